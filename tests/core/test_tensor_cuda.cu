// Device buffers and copies between host and cuda tensors, strided layouts included.
#define TFM_TEST_NEEDS_CUDA
#define TFM_TEST_MODULE test_tensor_cuda
#include "support/test_main.hpp"

#include "tfm/backend/cuda/profile.hpp"
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

// backend/cuda/profile.hpp: scoped GPU timings by name, nested scopes inclusive, collect() resets.
BOOST_AUTO_TEST_CASE(op_profiler_times_named_scopes) {
  cuda::stream st;
  buffer<float, space::cuda> big(std::size_t{64} << 20);  // 256 MB: each memset takes tens of µs
  cuda::op_profiler prof;
  for (int rep = 0; rep < 2; ++rep) {
    cuda::op_scope outer(&prof, "outer", st.get());
    TFM_CUDA_CHECK(cudaMemsetAsync(big.data(), 0, big.size() * sizeof(float), st.get()));
    {
      cuda::op_scope inner(&prof, "inner", st.get());
      TFM_CUDA_CHECK(cudaMemsetAsync(big.data(), 1, big.size() * sizeof(float), st.get()));
    }
  }
  { cuda::op_scope none(nullptr, "ignored", st.get()); }  // a null profiler records nothing
  const auto e = prof.collect();
  BOOST_REQUIRE_EQUAL(e.size(), 2u);
  BOOST_TEST(e[0].name == "outer");  // most time first: outer includes inner
  BOOST_TEST(e[1].name == "inner");
  BOOST_TEST(e[0].calls == 2);
  BOOST_TEST(e[1].calls == 2);
  BOOST_TEST(e[1].ms > 0.0);
  BOOST_TEST(e[0].ms > e[1].ms);
  BOOST_TEST(prof.collect().empty());
}
