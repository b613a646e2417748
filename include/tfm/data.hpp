// tfm/data.hpp — the data module: cleaning, quality and repetition filters, exact and
// near-duplicate removal, PII scrubbing, the streaming pipeline, and token shards.
// Needs the tfm::text CMake target (PCRE2, utf8proc, xxHash, nlohmann/json).
#pragma once
#include "tfm/data/pipeline.hpp"
#include "tfm/data/shard.hpp"
