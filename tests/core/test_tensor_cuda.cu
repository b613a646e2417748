// Device buffers and copies between host and cuda tensors, strided layouts included.
#define TFM_TEST_NEEDS_CUDA
#define TFM_TEST_MODULE test_tensor_cuda
#include "support/test_main.hpp"

#include "tfm/core/tensor.hpp"

using namespace tfm;

BOOST_AUTO_TEST_CASE(round_trip_through_the_device) {
  auto h = make_owning_tensor<float>(make_row_major(33, 17));
  for (int i = 0; i < 33; ++i)
    for (int j = 0; j < 17; ++j) h(i, j) = float(i * 1000 + j);
  auto d = make_owning_tensor<float, space::cuda>(make_row_major(33, 17));
  copy(h.view(), d.view());
  auto back = make_owning_tensor<float>(make_col_major(33, 17));
  copy(d.view(), back.view());
  for (int i = 0; i < 33; ++i)
    for (int j = 0; j < 17; ++j) BOOST_TEST(back(i, j) == float(i * 1000 + j));
}

BOOST_AUTO_TEST_CASE(strided_device_views) {
  buffer<float, space::cuda> dev(8 * 32);
  auto full = make_tensor(dev, make_row_major(8, 32));
  fill(full, -1.0f);
  auto pad = make_tensor(dev, make_padded_row_major(8, 20, 32));
  fill(pad, 3.0f);
  auto h = make_owning_tensor<float>(make_row_major(8, 32));
  copy(tensor<const float, std::remove_cvref_t<decltype(full.layout())>, space::cuda>(full), h.view());
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 32; ++j) BOOST_TEST(h(i, j) == (j < 20 ? 3.0f : -1.0f));
}

BOOST_AUTO_TEST_CASE(device_out_of_memory_is_an_exception) {
  using device_floats = buffer<float, space::cuda>;
  BOOST_CHECK_THROW(device_floats(std::size_t(1) << 50), out_of_memory);
}
