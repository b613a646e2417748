#define TFM_TEST_MODULE test_tensor
#include "support/test_main.hpp"

#include <cstdint>
#include <limits>
#include <string>

#include "tfm/core/tensor.hpp"

using namespace tfm;

BOOST_AUTO_TEST_CASE(buffer_is_aligned_and_moves) {
  buffer<float> b(1000);
  BOOST_TEST(b.size() == 1000u);
  BOOST_TEST(b.bytes() == 4000u);
  BOOST_TEST(reinterpret_cast<std::uintptr_t>(b.data()) % 64 == 0u);
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = float(i);
  float* p = b.data();
  buffer<float> c(std::move(b));
  BOOST_TEST(c.data() == p);
  BOOST_TEST(b.data() == nullptr);
  BOOST_TEST(b.size() == 0u);
  buffer<float> d;
  d = std::move(c);
  BOOST_TEST(d[999] == 999.0f);
  buffer<float> e(0);
  BOOST_TEST(e.empty());
  BOOST_TEST(e.data() == nullptr);
}

BOOST_AUTO_TEST_CASE(allocation_failure_is_a_clear_error) {
  // more than any machine has: must be an exception naming the size, not a crash
  try {
    buffer<float> huge(std::size_t(1) << 60);
    BOOST_FAIL("allocating 2^62 bytes succeeded");
  } catch (const out_of_memory& e) {
    BOOST_TEST(std::string(e.what()).find("4611686018427387904 bytes") != std::string::npos, e.what());
  }
  try {
    buffer<double> overflow(std::numeric_limits<std::size_t>::max() / 4);
    BOOST_FAIL("size overflow not detected");
  } catch (const out_of_memory& e) {
    BOOST_TEST(std::string(e.what()).find("overflow") != std::string::npos, e.what());
  }
}

BOOST_AUTO_TEST_CASE(views_index_through_their_layout) {
  buffer<int> b(3 * 5);
  auto t = make_tensor(b, make_row_major(3, 5));  // (3, 5)
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 5; ++j) t(i, j) = 10 * i + j;
  BOOST_TEST(b[1 * 5 + 2] == 12);
  auto tt = transposed(t);  // (5, 3) over the same memory
  BOOST_TEST(tt.size() == 15);
  BOOST_TEST(tt(4, 2) == 24);
  // a static layout: the view is just a pointer
  auto s = make_tensor(b.data(), make_row_major(_3, _5));
  static_assert(sizeof(s) == sizeof(int*));
  BOOST_TEST(s(2, 4) == 24);
  tensor<const int, decltype(make_row_major(_3, _5))> cs = s;
  BOOST_TEST(cs(1, 1) == 11);
}

BOOST_AUTO_TEST_CASE(view_must_fit_its_buffer) {
  buffer<float> b(10);
  BOOST_CHECK_THROW(make_tensor(b, make_row_major(3, 4)), shape_error);
  try {
    make_tensor(b, make_padded_row_major(2, 3, 8));  // spans 8 + 3 = 11
    BOOST_FAIL("no error");
  } catch (const shape_error& e) {
    const std::string w = e.what();
    BOOST_TEST(w.find("spans 11") != std::string::npos, w);
    BOOST_TEST(w.find("holds 10") != std::string::npos, w);
  }
}

BOOST_AUTO_TEST_CASE(fill_and_copy_between_layouts) {
  auto a = make_owning_tensor<float>(make_row_major(7, 9));
  auto c = make_owning_tensor<float>(make_col_major(7, 9));
  for (int i = 0; i < 7; ++i)
    for (int j = 0; j < 9; ++j) a(i, j) = float(i * 100 + j);
  copy(a.view(), c.view());
  for (int i = 0; i < 7; ++i)
    for (int j = 0; j < 9; ++j) BOOST_TEST(c(i, j) == float(i * 100 + j));
  BOOST_TEST(c.data()[1] == 100.0f);  // column major: (1, 0) is the second element

  // a padded view: the padding is left alone
  buffer<float> p(4 * 16);
  std::fill(p.begin(), p.end(), -1.0f);
  auto pv = make_tensor(p, make_padded_row_major(4, 9, 16));
  fill(pv, 2.5f);
  int twos = 0, untouched = 0;
  for (float x : p) {
    twos += x == 2.5f;
    untouched += x == -1.0f;
  }
  BOOST_TEST(twos == 36);
  BOOST_TEST(untouched == 64 - 36);
}

BOOST_AUTO_TEST_CASE(copy_checks_shapes) {
  auto a = make_owning_tensor<float>(make_row_major(3, 4));
  auto b = make_owning_tensor<float>(make_row_major(4, 3));
  try {
    copy(a.view(), b.view());
    BOOST_FAIL("no error");
  } catch (const shape_error& e) {
    const std::string w = e.what();
    BOOST_TEST(w.find("copy") != std::string::npos, w);
    BOOST_TEST((w.find("(3,4)") != std::string::npos || w.find("(3, 4)") != std::string::npos), w);
  }
}
