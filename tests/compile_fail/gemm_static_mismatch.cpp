// Must not compile: B's static rows (4) differ from A's static columns (3).
#include "tfm/ops/gemm.hpp"
int main() {
  float a[6], b[4], c[2];
  tfm::gemm(1.0f, tfm::make_tensor(a, tfm::make_row_major(tfm::_2, tfm::_3)),
            tfm::make_tensor(b, tfm::make_row_major(tfm::_4, tfm::_1)), 0.0f,
            tfm::make_tensor(c, tfm::make_row_major(tfm::_2, tfm::_1)));
}
