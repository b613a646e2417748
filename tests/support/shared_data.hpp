// tests/support/shared_data.hpp — locate files under ../shared/data for tests that read them.
// Missing data skips the test with a message, unless TFM_REQUIRE_SHARED_DATA=1, where it fails.
#pragma once
#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

namespace tfm::test {

inline std::filesystem::path shared_data_root() {
  if (const char* p = std::getenv("TFM_SHARED_DATA"); p && *p) return p;
  return std::filesystem::path("..") / "shared" / "data";
}

inline bool shared_data_required() {
  const char* p = std::getenv("TFM_REQUIRE_SHARED_DATA");
  return p && std::string(p) == "1";
}

// The path of `rel` under the shared data folder, or nullopt (after a skip message) when the
// file is absent. With TFM_REQUIRE_SHARED_DATA=1 an absent file fails the current test.
inline std::optional<std::filesystem::path> shared_data(const std::string& rel) {
  auto p = shared_data_root() / rel;
  if (std::filesystem::exists(p)) return p;
  if (shared_data_required()) {
    BOOST_FAIL("shared data file " << p << " is missing and TFM_REQUIRE_SHARED_DATA=1");
  }
  BOOST_TEST_MESSAGE("SKIP: shared data file " << p << " is absent (set TFM_SHARED_DATA)");
  return std::nullopt;
}

}  // namespace tfm::test
