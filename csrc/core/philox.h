// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11).
//
// One counter-based generator identical on host and device: every random draw in edfast is a
// pure function of (key, counter), so the noise of a data row never depends on the thread
// layout, the device or how the batch is cut. Pinned in tests by the Random123 known-answer
// vectors.
#pragma once

#include <cstdint>

#include "macros.h"

namespace edfast {
namespace core {

struct U32x4 {
  uint32_t v[4];
};

namespace philox_detail {
constexpr uint32_t kMul0 = 0xD2511F53u;
constexpr uint32_t kMul1 = 0xCD9E8D57u;
constexpr uint32_t kWeyl0 = 0x9E3779B9u;
constexpr uint32_t kWeyl1 = 0xBB67AE85u;

EDFAST_INLINE void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t product = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
  hi = static_cast<uint32_t>(product >> 32);
  lo = static_cast<uint32_t>(product);
}
}  // namespace philox_detail

// Ten rounds of Philox4x32 on `counter` under `key`.
EDFAST_INLINE U32x4 philox4x32_10(U32x4 counter, uint32_t key0, uint32_t key1) {
  using namespace philox_detail;
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(kMul0, counter.v[0], hi0, lo0);
    mulhilo(kMul1, counter.v[2], hi1, lo1);
    counter = U32x4{{hi1 ^ counter.v[1] ^ key0, lo1, hi0 ^ counter.v[3] ^ key1, lo0}};
    key0 += kWeyl0;
    key1 += kWeyl1;
  }
  return counter;
}

// The random stream of one data row.
//
// Counter layout: {block, stream, row_lo, row_hi}; key: the 64-bit seed. `stream` 0 is the
// draw of y from x, stream 1 + j that of negative j from y; `block` indexes the 4-word blocks
// of that stream. A draw is thus a function of (seed, row, stream, position) only.
struct RowStream {
  uint32_t key0, key1, row_lo, row_hi, stream;

  EDFAST_INLINE RowStream(uint64_t seed, uint64_t row, uint32_t stream_id)
      : key0(static_cast<uint32_t>(seed)),
        key1(static_cast<uint32_t>(seed >> 32)),
        row_lo(static_cast<uint32_t>(row)),
        row_hi(static_cast<uint32_t>(row >> 32)),
        stream(stream_id) {}

  EDFAST_INLINE U32x4 block(uint32_t index) const {
    return philox4x32_10(U32x4{{index, stream, row_lo, row_hi}}, key0, key1);
  }
};

// Stream ids: y first, then the negatives in order.
constexpr uint32_t kStreamY = 0;
EDFAST_INLINE uint32_t negative_stream(int64_t j) { return static_cast<uint32_t>(j + 1); }

}  // namespace core
}  // namespace edfast
