// tfm/data/shard.hpp — token shards: a tokenised corpus in one binary file that training maps
// into memory. shard_writer streams documents into a file written atomically; token_shard maps
// one and checks it before handing out a single token.
//
// File layout (little-endian), byte by byte:
//   0   char[8]  magic           "TFMSHRD\0"
//   8   u32      version         1
//   12  u32      token_bytes     2 (ids stored as uint16) or 4 (uint32)
//   16  u64      token_count     number of ids after the header
//   24  u64      source_bytes    bytes of text the ids encode (documents only, not separators)
//   32  u64      document_count  documents in the shard
//   40  u32      vocab_size      every id is < vocab_size (<= 65536 when token_bytes == 2)
//   44  u32      eot_id          the end-of-text id that precedes every document
//   48  u64      checksum        XXH64 (seed 0) of the token_count * token_bytes payload bytes
//   56  u64      reserved        0
//   64  ids      token_count ids of token_bytes each
// Documents are separated GPT-2 style: the end-of-text id comes before each document, so the
// file starts with it and a model never sees two documents joined without one.
//
// Writing goes to "<path>.tmp.<pid>", then flush, fsync and rename: a reader sees either the old
// file or the complete new one, never a partial shard.
#pragma once
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "tfm/core/error.hpp"

namespace tfm {

// A shard file that cannot be written, opened or read, or whose contents fail a check. The
// message names the file.
class shard_error : public error {
 public:
  using error::error;
};

struct shard_header {
  char magic[8];
  std::uint32_t version;
  std::uint32_t token_bytes;
  std::uint64_t token_count;
  std::uint64_t source_bytes;
  std::uint64_t document_count;
  std::uint32_t vocab_size;
  std::uint32_t eot_id;
  std::uint64_t checksum;
  std::uint64_t reserved;
};
static_assert(sizeof(shard_header) == 64, "shard_header is the on-disk layout: 64 bytes, no padding");
static_assert(offsetof(shard_header, token_count) == 16 && offsetof(shard_header, vocab_size) == 40 &&
              offsetof(shard_header, checksum) == 48);

inline constexpr char shard_magic[8] = {'T', 'F', 'M', 'S', 'H', 'R', 'D', '\0'};
inline constexpr std::uint32_t shard_version = 1;

// Streams documents into a shard. finish() publishes the file; destroying an unfinished writer
// removes its temporary file.
class shard_writer {
 public:
  // Ids are stored as uint16 when vocab_size <= 65536, else as uint32.
  shard_writer(std::filesystem::path path, std::uint32_t vocab_size, std::uint32_t eot_id)
      : path_(std::move(path)), tmp_(path_.string() + ".tmp." + std::to_string(::getpid())) {
    expects<shard_error>(vocab_size > 0 && eot_id < vocab_size, path_.string(), ": eot id ", eot_id,
                         " is not below vocab size ", vocab_size);
    h_ = shard_header{};
    std::memcpy(h_.magic, shard_magic, 8);
    h_.version = shard_version;
    h_.token_bytes = vocab_size <= 65536 ? 2 : 4;
    h_.vocab_size = vocab_size;
    h_.eot_id = eot_id;
    f_ = std::fopen(tmp_.c_str(), "wb");
    if (!f_) throw shard_error(detail::concat(tmp_.string(), ": cannot create (", std::strerror(errno), ")"));
    hash_ = XXH64_createState();
    if (!hash_) throw out_of_memory("shard_writer: cannot allocate an XXH64 state");
    XXH64_reset(hash_, 0);
    write(&h_, sizeof h_);  // placeholder, rewritten by finish()
  }
  ~shard_writer() {
    XXH64_freeState(hash_);
    if (f_) {
      std::fclose(f_);
      std::error_code ec;
      std::filesystem::remove(tmp_, ec);
    }
  }
  shard_writer(const shard_writer&) = delete;
  shard_writer& operator=(const shard_writer&) = delete;

  // Appends the end-of-text id, then `ids` (the document), counting `source_bytes` of text.
  template <class Id>
  void add_document(std::span<const Id> ids, std::uint64_t source_bytes) {
    static_assert(std::is_integral_v<Id>, "token ids are integers");
    put(h_.eot_id);
    for (const Id id : ids) {
      bool ok = std::uint64_t(id) < h_.vocab_size;
      if constexpr (std::is_signed_v<Id>) ok = ok && id >= 0;
      expects<shard_error>(ok, path_.string(), ": token id ", id,
                           " is not below vocab size ", h_.vocab_size);
      put(std::uint32_t(id));
    }
    h_.source_bytes += source_bytes;
    ++h_.document_count;
  }
  template <class Id>
  void add_document(const std::vector<Id>& ids, std::uint64_t source_bytes) {
    add_document(std::span<const Id>(ids), source_bytes);
  }

  std::uint64_t token_count() const { return h_.token_count + buf_.size() / h_.token_bytes; }

  // Writes the header, flushes, fsyncs and renames the file into place.
  void finish() {
    flush_buffer();
    h_.checksum = XXH64_digest(hash_);
    if (std::fseek(f_, 0, SEEK_SET) != 0) fail("seek");
    write(&h_, sizeof h_);
    if (std::fflush(f_) != 0) fail("flush");
    if (::fsync(::fileno(f_)) != 0) fail("fsync");
    if (std::fclose(f_) != 0) {
      f_ = nullptr;
      fail("close");
    }
    f_ = nullptr;
    std::error_code ec;
    std::filesystem::rename(tmp_, path_, ec);
    if (ec) {
      std::filesystem::remove(tmp_, ec);
      throw shard_error(detail::concat(path_.string(), ": cannot rename the finished shard into place (", ec.message(), ")"));
    }
  }

 private:
  void put(std::uint32_t id) {
    if (h_.token_bytes == 2) {
      const std::uint16_t v = std::uint16_t(id);
      buf_.insert(buf_.end(), reinterpret_cast<const char*>(&v), reinterpret_cast<const char*>(&v) + 2);
    } else {
      buf_.insert(buf_.end(), reinterpret_cast<const char*>(&id), reinterpret_cast<const char*>(&id) + 4);
    }
    if (buf_.size() >= (1u << 20)) flush_buffer();
  }
  void flush_buffer() {
    if (buf_.empty()) return;
    XXH64_update(hash_, buf_.data(), buf_.size());
    write(buf_.data(), buf_.size());
    h_.token_count += buf_.size() / h_.token_bytes;
    buf_.clear();
  }
  void write(const void* p, std::size_t n) {
    if (std::fwrite(p, 1, n, f_) != n) fail("write");
  }
  [[noreturn]] void fail(const char* what) {
    const int e = errno;
    throw shard_error(detail::concat(tmp_.string(), ": ", what, " failed (", std::strerror(e), ")"));
  }

  std::filesystem::path path_, tmp_;
  shard_header h_;
  std::FILE* f_ = nullptr;
  XXH64_state_t* hash_ = nullptr;
  std::vector<char> buf_;
};

// Writes `tokens` as one shard (the caller has put the end-of-text ids in place: no document
// structure is added; document_count is the number of eot ids).
inline void write_shard(const std::filesystem::path& path, std::span<const std::uint32_t> tokens,
                        std::uint32_t vocab_size, std::uint32_t eot_id, std::uint64_t source_bytes) {
  shard_writer w(path, vocab_size, eot_id);
  // add_document puts an eot first: hand it the stretches between eots.
  std::size_t b = 0;
  const bool starts_with_eot = !tokens.empty() && tokens[0] == eot_id;
  expects<shard_error>(starts_with_eot || tokens.empty(), path.string(),
                       ": write_shard expects the tokens to start with the end-of-text id ", eot_id);
  std::uint64_t docs = 0;
  for (std::size_t i = 1; i <= tokens.size(); ++i) {
    if (i == tokens.size() || tokens[i] == eot_id) {
      w.add_document(tokens.subspan(b + 1, i - b - 1), docs == 0 ? source_bytes : 0);
      ++docs;
      b = i;
    }
  }
  w.finish();
}

// A shard mapped read-only into memory, checked when opened: magic, version, token width,
// file size against the header (truncation), vocabulary against the token width, the fields the
// checksum does not cover (eot id < vocab_size, document count <= token count, reserved 0, the
// first id is the eot id), and (unless `verify` is false) the checksum and every id < vocab_size.
class token_shard {
 public:
  explicit token_shard(std::filesystem::path path, bool verify = true) : path_(std::move(path)) {
    try {
      open_and_check(verify);
    } catch (...) {
      close();
      throw;
    }
  }
  ~token_shard() { close(); }
  token_shard(token_shard&& o) noexcept { *this = std::move(o); }
  token_shard& operator=(token_shard&& o) noexcept {
    if (this != &o) {
      close();
      path_ = std::move(o.path_);
      h_ = o.h_;
      fd_ = std::exchange(o.fd_, -1);
      base_ = std::exchange(o.base_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }

  const shard_header& header() const { return h_; }
  const std::filesystem::path& path() const { return path_; }
  std::size_t size() const { return std::size_t(h_.token_count); }
  std::uint32_t vocab_size() const { return h_.vocab_size; }
  std::uint32_t eot_id() const { return h_.eot_id; }

  std::uint32_t operator[](std::uint64_t i) const {
    const unsigned char* p = base_ + sizeof(shard_header) + i * h_.token_bytes;
    if (h_.token_bytes == 2) {
      std::uint16_t v;
      std::memcpy(&v, p, 2);
      return v;
    }
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
  }
  // Copies ids [offset, offset + out.size()) into out; throws shard_error past the end.
  template <class Id>
  void read(std::uint64_t offset, std::span<Id> out) const {
    expects<shard_error>(offset <= h_.token_count && out.size() <= h_.token_count - offset, path_.string(),
                         ": read of ", out.size(), " tokens at ", offset, " past the end (", h_.token_count, " tokens)");
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = Id((*this)[offset + i]);
  }

 private:
  void open_and_check(bool verify) {
    fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) fail("cannot open (", std::strerror(errno), ")");
    struct stat st {};
    if (::fstat(fd_, &st) != 0) fail("cannot stat (", std::strerror(errno), ")");
    if (!S_ISREG(st.st_mode)) fail(S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file");
    size_ = std::size_t(st.st_size);
    if (size_ < sizeof(shard_header))
      fail("truncated: ", size_, " bytes, smaller than the ", sizeof(shard_header), "-byte header");
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0);
    if (p == MAP_FAILED) fail("cannot mmap (", std::strerror(errno), ")");
    base_ = static_cast<const unsigned char*>(p);
    std::memcpy(&h_, base_, sizeof h_);
    if (std::memcmp(h_.magic, shard_magic, 8) != 0) fail("not a tfm token shard (wrong magic)");
    if (h_.version != shard_version) fail("unsupported shard version ", h_.version, " (this build reads ", shard_version, ")");
    if (h_.token_bytes != 2 && h_.token_bytes != 4) fail("token width ", h_.token_bytes, " bytes is neither 2 nor 4");
    if (h_.vocab_size == 0 || (h_.token_bytes == 2 && h_.vocab_size > 65536))
      fail("vocab size ", h_.vocab_size, " does not fit ", h_.token_bytes, "-byte ids");
    const std::uint64_t payload = (size_ - sizeof h_);
    if (h_.token_count > payload / h_.token_bytes)
      fail("truncated: header says ", h_.token_count, " tokens of ", h_.token_bytes, " bytes but the file holds ",
           payload, " bytes after the header");
    if (h_.token_count * h_.token_bytes != payload)
      fail("size mismatch: ", payload - h_.token_count * h_.token_bytes, " bytes after the last token");
    // What the writer guarantees of the fields the checksum does not cover.
    if (h_.eot_id >= h_.vocab_size) fail("end-of-text id ", h_.eot_id, " is not below vocab size ", h_.vocab_size);
    if (h_.reserved != 0) fail("reserved header field is ", h_.reserved, ", not 0 (corrupted header)");
    if (h_.document_count > h_.token_count)
      fail("header says ", h_.document_count, " documents but the shard holds only ", h_.token_count,
           " tokens (each document starts with the end-of-text id)");
    if (verify) {
      if (XXH64(base_ + sizeof h_, payload, 0) != h_.checksum) fail("checksum mismatch (corrupted payload)");
      for (std::uint64_t i = 0; i < h_.token_count; ++i)
        if (const auto id = (*this)[i]; id >= h_.vocab_size)
          fail("token ", i, " is ", id, ", not below vocab size ", h_.vocab_size);
    }
    if (h_.token_count > 0 && (*this)[0] != h_.eot_id)
      fail("the first token is ", (*this)[0], ", not the end-of-text id ", h_.eot_id, " that starts every document");
  }

  template <class... A>
  [[noreturn]] void fail(A&&... a) const {
    throw shard_error(detail::concat(path_.string(), ": ", std::forward<A>(a)...));
  }
  void close() {
    if (base_) ::munmap(const_cast<unsigned char*>(base_), size_);
    if (fd_ >= 0) ::close(fd_);
    base_ = nullptr;
    fd_ = -1;
  }

  std::filesystem::path path_;
  shard_header h_{};
  int fd_ = -1;
  const unsigned char* base_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace tfm
