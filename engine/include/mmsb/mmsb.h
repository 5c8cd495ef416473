// Umbrella header for the MMSB engine.
#pragma once

#include "mmsb/arena.h"
#include "mmsb/bus.h"
#include "mmsb/delta.h"
#include "mmsb/diff.h"
#include "mmsb/hash.h"
#include "mmsb/mirror.h"
#include "mmsb/status.h"
#include "mmsb/tlog.h"
#include "mmsb/types.h"
