// Umbrella header of the balancing core.
#pragma once

#include "siplb/balance/affinity.h"
#include "siplb/balance/client_vips.h"
#include "siplb/balance/hash.h"
#include "siplb/balance/maglev.h"
#include "siplb/balance/pick.h"
#include "siplb/balance/rcu.h"
#include "siplb/balance/snapshot.h"
#include "siplb/balance/table_size.h"
