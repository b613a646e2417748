// tfm/tokenizer.hpp — the tokenizer module (byte-level BPE); see tfm/tokenizer/tokenizer.hpp.
// Needs the tfm::text CMake target (PCRE2, utf8proc, xxHash, nlohmann/json).
#pragma once
#include "tfm/tokenizer/tokenizer.hpp"
