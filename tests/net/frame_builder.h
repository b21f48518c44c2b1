// The frame builders moved to tests/support (siplb_test_support_dep). This
// path stays only for scripts/fuzz's tests/protect/fuzz_worker_path.cpp,
// which includes it relatively; delete it once that include names
// "../support/frame_builder.h".
#pragma once

#include "../support/frame_builder.h"
