// tfm/core/file.hpp — whole-file reads and atomic writes, with errors that name the file. E is the
// exception type the caller's module throws (tfm::error by default).
//
// write_file_atomic writes "<path>.tmp", flushes it (and fsyncs it when `durable`), then renames it
// over `path`: a reader sees the old file or the complete new one, never half of one. On failure
// the temporary file is removed.
#pragma once
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>

#include <fcntl.h>
#include <unistd.h>

#include "tfm/core/error.hpp"

namespace tfm {

template <class E = error>
std::string read_file(const std::filesystem::path& p) {
  // A directory opens on Linux and reads as empty: say what it is instead.
  std::error_code ec;
  if (std::filesystem::is_directory(p, ec)) throw E(detail::concat(p.string(), ": is a directory, not a file"));
  std::ifstream in(p, std::ios::binary);
  if (!in) throw E(detail::concat(p.string(), ": cannot open (", std::strerror(errno), ")"));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw E(detail::concat(p.string(), ": read failed"));
  return std::move(ss).str();
}

// fsync of a file, or of a directory (after a rename into it). A directory that cannot be synced
// is not an error: some file systems refuse it, and the rename itself has happened.
template <class E = error>
void sync_path(const std::filesystem::path& p, bool directory = false) {
  const int fd = ::open(p.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
  if (fd < 0) throw E(detail::concat(p.string(), ": cannot open to sync (", std::strerror(errno), ")"));
  const int r = ::fsync(fd);
  const int e = errno;
  ::close(fd);
  if (r != 0 && !directory) throw E(detail::concat(p.string(), ": fsync failed (", std::strerror(e), ")"));
}

template <class E = error>
void write_file_atomic(const std::filesystem::path& path, std::string_view content, bool durable = false) {
  const std::filesystem::path tmp = path.string() + ".tmp";
  std::error_code ec;
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw E(detail::concat(tmp.string(), ": cannot create (", std::strerror(errno), ")"));
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    out.flush();
    if (!out) {
      const int e = errno;
      out.close();
      std::filesystem::remove(tmp, ec);
      throw E(detail::concat(tmp.string(), ": write failed (", std::strerror(e), ")"));
    }
  }
  if (durable) sync_path<E>(tmp);
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw E(detail::concat(path.string(), ": cannot rename ", tmp.string(), " into place (", ec.message(), ")"));
  }
}

}  // namespace tfm
