// tests/support/temp_files.hpp — what file-writing tests share: a temporary directory removed
// with its contents at the end of the scope (and files written into it), and a check that a call
// throws an exception of a given type whose message contains a given text.
#pragma once
#include <unistd.h>

#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

namespace tfm::test {

// A fresh directory under the system's temporary directory, unique per process and object.
struct temp_dir {
  std::filesystem::path path;
  explicit temp_dir(const std::string& prefix = "tfm_test") {
    static int n = 0;
    path = std::filesystem::temp_directory_path() /
           (prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  std::filesystem::path operator/(const std::string& name) const { return path / name; }
  // Writes `bytes` to the file `name` in the directory (replacing it) and returns its path.
  std::filesystem::path write(const std::string& name, const std::string& bytes) const {
    const auto p = path / name;
    std::ofstream os(p, std::ios::binary | std::ios::trunc);
    os.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    BOOST_REQUIRE_MESSAGE(os.good(), "cannot write " << p.string());
    return p;
  }
};

// f() must throw E with `needle` in its message.
template <class E, class F>
void check_throws_with(F&& f, const std::string& needle) {
  try {
    f();
  } catch (const E& e) {
    const std::string w = e.what();
    BOOST_TEST_INFO("message: " << w);
    BOOST_TEST(w.find(needle) != std::string::npos);
    return;
  }
  BOOST_FAIL("expected an exception mentioning '" + needle + "'");
}

}  // namespace tfm::test
