// tfm/tokenizer/errors.hpp — what the tokenizer throws. Every message names the file (when there
// is one) and what was wrong in it, e.g. "vocab.json: merge 17 (line 18) uses unknown token 'Ġx'".
#pragma once
#include "tfm/core/error.hpp"

namespace tfm {

// A tokenizer file that cannot be opened, read or written.
class tokenizer_io_error : public error {
 public:
  using error::error;
};

// A tokenizer file or definition whose contents are malformed or inconsistent (bad JSON, a
// merge that names an unknown token, a missing byte token, a duplicate id ...).
class tokenizer_format_error : public error {
 public:
  using error::error;
};

}  // namespace tfm
