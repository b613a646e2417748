// tfm/tokenizer/tokenizer.hpp — the tokenizer module: byte-level BPE (bpe.hpp), its
// pre-tokenizers (pre_tokenizer.hpp), training (trainer.hpp) and file formats (io.hpp).
// Needs the tfm::text CMake target (PCRE2, utf8proc, xxHash, nlohmann/json).
#pragma once
#include "tfm/tokenizer/byte_unicode.hpp"
#include "tfm/tokenizer/errors.hpp"
#include "tfm/tokenizer/pre_tokenizer.hpp"
#include "tfm/tokenizer/bpe.hpp"
#include "tfm/tokenizer/io.hpp"
#include "tfm/tokenizer/trainer.hpp"
