// tfm/core.hpp — the core module: configuration, errors, static/dynamic integers and tuples,
// layouts, dtypes, memory spaces and buffers, tensors, the counter-based RNG.
#pragma once
#include "tfm/core/config.hpp"
#include "tfm/core/dtype.hpp"
#include "tfm/core/error.hpp"
#include "tfm/core/integral.hpp"
#include "tfm/core/layout.hpp"
#include "tfm/core/memory.hpp"
#include "tfm/core/rng.hpp"
#include "tfm/core/tensor.hpp"
#include "tfm/core/tuple.hpp"
