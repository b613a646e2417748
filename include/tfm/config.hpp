// tfm/config.hpp — convenience alias for tfm/core/config.hpp.
#pragma once
#include "tfm/core/config.hpp"
