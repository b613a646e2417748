// tfm/core/tensor.hpp — `tensor<T, Layout, Space>`, a non-owning view (pointer + layout, tagged
// with its memory space), `owning_tensor` (a buffer plus a layout), and the whole-tensor
// operations every space supports: fill and copy (also between host and cuda).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "tfm/core/config.hpp"
#include "tfm/core/error.hpp"
#include "tfm/core/layout.hpp"
#include "tfm/core/memory.hpp"

namespace tfm {

template <class T, layout_type L, memory_space S = space::host>
class tensor {
 public:
  using value_type = std::remove_const_t<T>;
  using element_type = T;
  using layout_t = L;
  using space_type = S;
  static constexpr int rank = L::rank;

  tensor() = default;
  TFM_HOST_DEVICE constexpr tensor(T* data, L const& layout) : data_(data), layout_(layout) {}
  // A view of T is also a view of const T.
  template <class U>
    requires(std::is_same_v<T, const U>)
  TFM_HOST_DEVICE constexpr tensor(tensor<U, L, S> const& o) : data_(o.data()), layout_(o.layout()) {}

  TFM_HOST_DEVICE constexpr T* data() const noexcept { return data_; }
  TFM_HOST_DEVICE constexpr L const& layout() const noexcept { return layout_; }
  TFM_HOST_DEVICE constexpr decltype(auto) shape() const { return layout_.shape(); }
  TFM_HOST_DEVICE constexpr decltype(auto) stride() const { return layout_.stride(); }
  TFM_HOST_DEVICE constexpr std::int64_t size() const { return static_cast<std::int64_t>(tfm::size(layout_)); }
  // Elements from the first to one past the last addressed: the memory the view spans.
  TFM_HOST_DEVICE constexpr std::int64_t span() const { return static_cast<std::int64_t>(cosize(layout_)); }

  // t(i, j, ...) and t(linear index): the element (on the host only for host tensors).
  template <class... Coord>
  TFM_HOST_DEVICE constexpr T& operator()(Coord... c) const {
    return data_[layout_(c...)];
  }

 private:
  T* data_ = nullptr;
  [[no_unique_address]] L layout_{};
};

template <class T>
struct is_tensor : std::false_type {};
template <class T, class L, class S>
struct is_tensor<tensor<T, L, S>> : std::true_type {};
template <class T>
concept tensor_type = is_tensor<std::remove_cvref_t<T>>::value;

template <memory_space S = space::host, class T, layout_type L>
TFM_HOST_DEVICE constexpr tensor<T, L, S> make_tensor(T* data, L const& layout) {
  return {data, layout};
}

// A view of a buffer; the layout must fit inside it.
template <class T, memory_space S, layout_type L>
tensor<T, L, S> make_tensor(buffer<T, S>& b, L const& layout) {
  const auto need = static_cast<std::int64_t>(cosize(layout));
  if (need > static_cast<std::int64_t>(b.size()))
    throw shape_error(detail::concat("make_tensor: layout ", to_string(layout), " spans ", need,
                                     " elements but the buffer holds ", b.size()));
  return {b.data(), layout};
}
template <class T, memory_space S, layout_type L>
tensor<const T, L, S> make_tensor(buffer<T, S> const& b, L const& layout) {
  const auto need = static_cast<std::int64_t>(cosize(layout));
  if (need > static_cast<std::int64_t>(b.size()))
    throw shape_error(detail::concat("make_tensor: layout ", to_string(layout), " spans ", need,
                                     " elements but the buffer holds ", b.size()));
  return {b.data(), layout};
}

// A transposed view: the modes of a rank-2 tensor swapped, no data moved.
template <class T, layout_type L, memory_space S>
TFM_HOST_DEVICE constexpr auto transposed(tensor<T, L, S> const& t) {
  static_assert(L::rank == 2, "transposed: only rank-2 tensors");
  auto l = transpose(t.layout());
  return tensor<T, decltype(l), S>(t.data(), l);
}

// Storage and a layout together: owns `cosize(layout)` elements.
template <class T, layout_type L, memory_space S = space::host>
class owning_tensor {
 public:
  owning_tensor() = default;
  explicit owning_tensor(L const& layout)
      : buffer_(static_cast<std::size_t>(cosize(layout))), layout_(layout) {}

  tensor<T, L, S> view() { return {buffer_.data(), layout_}; }
  tensor<const T, L, S> view() const { return {buffer_.data(), layout_}; }
  operator tensor<T, L, S>() { return view(); }
  operator tensor<const T, L, S>() const { return view(); }

  T* data() { return buffer_.data(); }
  const T* data() const { return buffer_.data(); }
  L const& layout() const { return layout_; }
  std::int64_t size() const { return static_cast<std::int64_t>(tfm::size(layout_)); }
  buffer<T, S>& storage() { return buffer_; }

  template <class... Coord>
  T& operator()(Coord... c)
    requires std::same_as<S, space::host>
  {
    return buffer_.data()[layout_(c...)];
  }
  template <class... Coord>
  const T& operator()(Coord... c) const
    requires std::same_as<S, space::host>
  {
    return buffer_.data()[layout_(c...)];
  }

 private:
  buffer<T, S> buffer_;
  [[no_unique_address]] L layout_{};
};

template <class T, memory_space S = space::host, layout_type L>
owning_tensor<T, L, S> make_owning_tensor(L const& layout) {
  return owning_tensor<T, L, S>(layout);
}

namespace detail {
// Whether the view covers exactly the elements [0, size) with no gaps (any order).
template <layout_type L>
bool is_compact(L const& l) {
  return static_cast<std::int64_t>(cosize(l)) == static_cast<std::int64_t>(size(l)) &&
         static_cast<std::int64_t>(size(l)) > 0;
}

template <class L>
bool same_strides(L const& a, L const& b) {
  return a == b;
}
template <class A, class B>
bool same_strides(A const& a, B const& b) {
  if constexpr (requires { a == b; }) {
    return a == b;
  } else {
    return false;
  }
}
}  // namespace detail

// Sets every element of the view to `value`.
template <class T, layout_type L, memory_space S>
void fill(tensor<T, L, S> const& t, std::type_identity_t<T> value) {
  static_assert(!std::is_const_v<T>, "fill: the tensor is a view of const");
  if constexpr (std::same_as<S, space::host>) {
    const std::int64_t n = t.size();
    if (detail::is_compact(t.layout())) {
      std::fill(t.data(), t.data() + n, value);
    } else {
      for (std::int64_t i = 0; i < n; ++i) t(i) = value;
    }
  } else {
#if TFM_HAS_CUDA
    // Staged through host memory so that host translation units can fill device tensors
    // (a strided view is read, updated and written back whole); kernels may do better.
    if (t.size() == 0) return;
    const auto span = static_cast<std::size_t>(t.span());
    buffer<T, space::host> staging(span);
    if (!detail::is_compact(t.layout())) cuda::copy(staging.data(), t.data(), span * sizeof(T));
    fill(tensor<T, L, space::host>(staging.data(), t.layout()), value);
    cuda::copy(t.data(), staging.data(), span * sizeof(T));
#else
    static_assert(std::same_as<S, space::host>, "fill: cuda tensors need TFM_HAS_CUDA (tfm_enable_cuda)");
#endif
  }
}

// Copies src into dst (same shape; any layouts; host↔host, host↔cuda, cuda↔cuda).
// Layouts that differ across spaces are staged through host memory.
template <class TS, layout_type LS, memory_space SS, class TD, layout_type LD, memory_space SD>
void copy(tensor<TS, LS, SS> const& src, tensor<TD, LD, SD> const& dst) {
  static_assert(std::is_same_v<std::remove_const_t<TS>, TD>, "copy: element types differ");
  check_same_shape("copy", "src", src.layout(), "dst", dst.layout());
  const std::int64_t n = src.size();
  if (n == 0) return;
  if constexpr (std::same_as<SS, space::host> && std::same_as<SD, space::host>) {
    if (detail::same_strides(src.layout(), dst.layout()) && detail::is_compact(src.layout())) {
      std::memcpy(dst.data(), src.data(), static_cast<std::size_t>(n) * sizeof(TD));
    } else {
      for (std::int64_t i = 0; i < n; ++i) dst(i) = src(i);
    }
  } else {
#if TFM_HAS_CUDA
    const std::size_t bytes = static_cast<std::size_t>(n) * sizeof(TD);
    if (detail::same_strides(src.layout(), dst.layout()) && detail::is_compact(src.layout())) {
      cuda::copy(dst.data(), src.data(), bytes);
      return;
    }
    // Staged through host memory. Reading the gaps of a strided device view is harmless; a
    // strided device destination is read, updated and written back whole (synchronously).
    if constexpr (std::same_as<SD, space::host>) {
      buffer<TD, space::host> staging(static_cast<std::size_t>(src.span()));
      cuda::copy(staging.data(), src.data(), static_cast<std::size_t>(src.span()) * sizeof(TD));
      tensor<const TD, LS, space::host> s(staging.data(), src.layout());
      for (std::int64_t i = 0; i < n; ++i) dst(i) = s(i);
    } else if constexpr (std::same_as<SS, space::host>) {
      const auto span = static_cast<std::size_t>(dst.span());
      buffer<TD, space::host> staging(span);
      if (!detail::is_compact(dst.layout())) cuda::copy(staging.data(), dst.data(), span * sizeof(TD));
      tensor<TD, LD, space::host> d(staging.data(), dst.layout());
      for (std::int64_t i = 0; i < n; ++i) d(i) = src(i);
      cuda::copy(dst.data(), staging.data(), span * sizeof(TD));
    } else {
      throw invalid_argument(detail::concat("copy: cuda to cuda between different layouts (", to_string(src.layout()),
                                            " and ", to_string(dst.layout()), ") needs a kernel; copy through the host"));
    }
#else
    static_assert(std::same_as<SS, space::host>, "copy: cuda tensors need TFM_HAS_CUDA (tfm_enable_cuda)");
#endif
  }
}

}  // namespace tfm
