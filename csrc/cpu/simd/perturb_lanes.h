// The dense perturbation rows on SIMD lanes, written once over `Lanes` (avx512.h, avx2.h) and
// included by perturb_simd.cpp inside each ISA's namespace.
//
// Work item = (stream s, block b) of one row's stage (y from x: one stream; the negatives from
// y: M streams), in order. A batch of Lanes::kCount items draws its Philox blocks together, turns
// them into 4 values per lane (normals, flip flags, next states), interleaves them lane after
// lane, and writes them. A stage's outputs are linear (coordinate d of stream s at s*D + d), so
// with D a multiple of 4 a batch writes one contiguous range and with D < 4 each lane's first D
// values pack contiguously: both are unit-stride loops the compiler vectorises. Other D write
// lane by lane.

constexpr int kBatch = 4 * Lanes::kCount;  // values per batch, 4 per lane

// One stage of the rows' perturbation: `streams` outputs of dim coordinates one after another
// (coordinate d of output s at s*dim + d). Either the negatives of one row (stream ids
// first_stream + s, all from the one input row) or y of consecutive rows (rows row + s, stream
// y, each from its own input row: streams_are_rows).
struct Stage {
  uint64_t row;
  int64_t streams;
  uint32_t first_stream;
  bool streams_are_rows;
};

// Draws the Philox blocks of a stage, all blocks of each output, a batch of lanes at a time:
// fn(first_item, n, block_of, stream_of, words) with stream_of the lanes' first_stream + s. The
// lanes' (block, s) stay in registers: advanced by kCount items, then wrapped into the output.
template <typename Fn>
inline void for_each_batch(uint64_t seed, const Stage& stage, int64_t blocks, Fn&& fn) {
  const uint32_t first_stream = stage.first_stream;
  const int64_t streams = stage.streams;
  constexpr int kCount = Lanes::kCount;
  alignas(64) uint32_t block_of[kCount], stream_of[kCount];
  const int64_t total = streams * blocks;
  const I last_block = Lanes::set1(static_cast<uint32_t>(blocks - 1)), block_count = Lanes::set1(static_cast<uint32_t>(blocks));
  const auto wrap = [&](I& block, I& stream) {
    for (M past = Lanes::greater_u32(block, last_block); Lanes::mask_bits(past) != 0;
         past = Lanes::greater_u32(block, last_block)) {
      block = Lanes::select(past, block, Lanes::sub(block, block_count));
      stream = Lanes::add_one_where(past, stream);
    }
  };
  I block = Lanes::lane_index(), stream = Lanes::set1(first_stream);
  if (blocks == 1) {
    stream = Lanes::add(stream, block);
    block = Lanes::set1(0);
  } else {
    wrap(block, stream);
  }
  for (int64_t first = 0; first < total; first += kCount) {
    const int n = static_cast<int>(total - first < kCount ? total - first : kCount);
    Lanes::store(block_of, block);
    Lanes::store(stream_of, stream);
    I words[4];
    if (stage.streams_are_rows) {  // counter {block, y's stream, row + s}: s counts rows here
      const I s = Lanes::sub(stream, Lanes::set1(first_stream));
      const I row_lo = Lanes::add(Lanes::set1(static_cast<uint32_t>(stage.row)), s);
      const I row_hi = Lanes::add_one_where(Lanes::less_u32(row_lo, Lanes::set1(static_cast<uint32_t>(stage.row))),
                                            Lanes::set1(static_cast<uint32_t>(stage.row >> 32)));
      words[0] = block;
      words[1] = Lanes::set1(core::kStreamY);
      words[2] = row_lo;
      words[3] = row_hi;
    } else {
      words[0] = block;
      words[1] = stream;
      words[2] = Lanes::set1(static_cast<uint32_t>(stage.row));
      words[3] = Lanes::set1(static_cast<uint32_t>(stage.row >> 32));
    }
    philox(words, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
    fn(first, n, block_of, stream_of, words);
    if (blocks == 1) {  // lanes past the last stream draw unused blocks
      stream = Lanes::add(stream, Lanes::set1(kCount));
    } else {
      block = Lanes::add(block, Lanes::set1(kCount));
      wrap(block, stream);
    }
  }
}

// Lays out a batch whose lanes hold 4 values each (v[k], lane by lane the item's coordinates
// 4b + k) and writes them by runs: run(c, in, values, len) writes the stage's outputs c ..
// c+len-1 (c = s*dim + d) from `len` values and inputs. The input of output s is its own row
// (in + s*dim, y's stage) or the one row all share (in, the negatives' stage: `repeated` holds
// it over kBatch values for D <= 2). With D a multiple of 4 the batch is one range of outputs,
// split at their ends; with D = 1 or 2 each lane's first D values pack together; other D go
// lane by lane.
template <typename T, typename Run>
inline void write_batch(const I v[4], int64_t first, int n, int64_t dim, const uint32_t* block_of,
                        const uint32_t* stream_of, const Stage& stage, const T* in, const T* repeated, Run&& run) {
  alignas(64) uint32_t values[kBatch];
  const bool own_rows = stage.streams_are_rows;
  if (dim % 4 == 0) {
    Lanes::interleave4(v, values);
    int64_t c = 4 * first;
    const int64_t end = c + 4 * static_cast<int64_t>(n);
    int64_t d = static_cast<int64_t>(block_of[0]) * core::kCoordsPerBlock;  // c's place in its row
    for (int t = 0; c < end; d = 0) {
      const int64_t len = end - c < dim - d ? end - c : dim - d;
      run(c, in + (own_rows ? c : d), values + t, len);
      c += len;
      t += static_cast<int>(len);
    }
  } else if (dim <= 2) {
    if (dim == 1) Lanes::store(values, v[0]);
    else Lanes::interleave2(v, values);
    run(first * dim, own_rows ? in + first * dim : repeated, values, n * dim);
  } else {
    Lanes::interleave4(v, values);
    for (int j = 0; j < n; ++j) {
      const int64_t d = static_cast<int64_t>(block_of[j]) * core::kCoordsPerBlock;
      const int64_t c = static_cast<int64_t>(stream_of[j] - stage.first_stream) * dim + d;
      run(c, in + (own_rows ? c : d), values + 4 * j, dim - d < core::kCoordsPerBlock ? dim - d : int64_t{core::kCoordsPerBlock});
    }
  }
}

// in[0 .. dim) repeated over kBatch values, for write_batch with dim <= 2.
template <typename T>
inline void repeat_row(const T* in, int64_t dim, T* repeated) {
  if (dim > 2) return;
  for (int u = 0; u < kBatch; u += static_cast<int>(dim)) {  // kBatch is a multiple of 1 and 2
    for (int64_t d = 0; d < dim; ++d) repeated[u + d] = in[d];
  }
}

// The runs themselves, with restrict pointers so the loops vectorise (a byte output could
// otherwise alias everything).
template <typename T>
inline void gaussian_run(T* __restrict out, const T* __restrict in, const float* __restrict z, int64_t len, T scale) {
  for (int64_t u = 0; u < len; ++u) out[u] = core::exact::mul_add(scale, static_cast<T>(z[u]), in[u]);
}
template <typename U>
inline void bernoulli_run(U* __restrict out, const U* __restrict in, const uint32_t* __restrict flags, int64_t len,
                          core::BinaryFlip<U> flip) {
  U narrow[kBatch];  // the flags in U's width (0 or nonzero), so the select below vectorises
  for (int64_t u = 0; u < len; ++u) narrow[u] = static_cast<U>(flags[u]);
  for (int64_t u = 0; u < len; ++u) out[u] = narrow[u] ? flip(in[u]) : in[u];
}
inline void state_run(int64_t* __restrict out, const uint32_t* __restrict next, int64_t len) {
  for (int64_t u = 0; u < len; ++u) out[u] = next[u];
}

// Runs stage(stage, in, out) for y of rows [begin, end) (from x, all rows in one stage) and then
// the negatives of each row (from its y), as perturb_rows() does.
template <typename T, typename StageFn>
inline void for_each_stage(const T* x, T* y, T* negatives, const PerturbShape& shape, int64_t begin,
                           int64_t end, StageFn&& stage) {
  const int64_t dim = shape.dim, m = shape.negatives;
  if (end <= begin) return;
  stage(Stage{static_cast<uint64_t>(shape.row_offset + begin), end - begin, 0u, true}, x + begin * dim, y + begin * dim);
  if (m == 0) return;
  for (int64_t i = begin; i < end; ++i) {
    stage(Stage{static_cast<uint64_t>(shape.row_offset + i), m, core::negative_stream(shape.neg_offset), false},
          static_cast<const T*>(y + i * dim), negatives + i * m * dim);
  }
}

template <typename T>
bool gaussian_rows(const T* x, T* y, T* negatives, const PerturbShape& shape, double scale, int64_t begin,
                   int64_t end) {
  const int64_t dim = shape.dim, blocks = core::blocks_per_row(dim);
  const T s = static_cast<T>(scale);
  const bool second_pair = dim > 2;  // with D <= 2 no coordinate uses words 2 and 3
  for_each_stage(x, y, negatives, shape, begin, end, [&](const Stage& stage, const T* in, T* out) {
    T repeated[kBatch];
    if (!stage.streams_are_rows) repeat_row(in, dim, repeated);
    for_each_batch(shape.seed, stage, blocks,
                   [&](int64_t first, int n, const uint32_t* block_of, const uint32_t* stream_of, const I* words) {
                     F normals[4];
                     normal_pair(words[0], words[1], normals[0], normals[1]);
                     if (second_pair) normal_pair(words[2], words[3], normals[2], normals[3]);
                     else normals[2] = normals[3] = normals[0];
                     const I bits[4] = {Lanes::as_int(normals[0]), Lanes::as_int(normals[1]),
                                        Lanes::as_int(normals[2]), Lanes::as_int(normals[3])};
                     write_batch(bits, first, n, dim, block_of, stream_of, stage, in, repeated,
                                 [&](int64_t c, const T* a, const uint32_t* z, int64_t len) {
                                   gaussian_run(out + c, a, reinterpret_cast<const float*>(z), len, s);
                                 });
                   });
  });
  return true;
}

template <typename U>
bool dense_bernoulli_rows(const U* x, U* y, U* negatives, const PerturbShape& shape, uint64_t threshold,
                          core::BinaryFlip<U> flip, int64_t begin, int64_t end) {
  const int64_t dim = shape.dim, blocks = core::blocks_per_row(dim);
  const I limit = Lanes::set1(static_cast<uint32_t>(threshold));  // < 2^32 for epsilon < 1
  const I zero = Lanes::set1(0), ones = Lanes::set1(0xffffffffu);
  for_each_stage(x, y, negatives, shape, begin, end, [&](const Stage& stage, const U* in, U* out) {
    U repeated[kBatch];
    if (!stage.streams_are_rows) repeat_row(in, dim, repeated);
    for_each_batch(shape.seed, stage, blocks,
                   [&](int64_t first, int n, const uint32_t* block_of, const uint32_t* stream_of, const I* words) {
                     I flip_lanes[4];
                     for (int k = 0; k < 4; ++k) flip_lanes[k] = Lanes::select(Lanes::less_u32(words[k], limit), zero, ones);
                     write_batch(flip_lanes, first, n, dim, block_of, stream_of, stage, in, repeated,
                                 [&](int64_t c, const U* a, const uint32_t* flags, int64_t len) {
                                   bernoulli_run(out + c, a, flags, len, flip);
                                 });
                   });
  });
  return true;
}

// Categorical: the inverse-CDF draw of core::transition_draw as integer comparisons. With u =
// word / 2^32 exactly, u >= cdf[j] <=> word >= ceil(cdf[j] 2^32) = T_j, and along a
// nondecreasing row the linear search stops at #{j < K-1 : u >= cdf[j]}. So the next state is
// base[state] + #{j : word > above[j][state]}, where entries with T_j <= 0 always count (base)
// and above[j] = T_j - 1 otherwise (0xffffffff: never). Each table fits one register of
// lanes (K <= Lanes::kCount) and is looked up per lane by a permute.
inline bool transition_tables(const double* cdf, int64_t num_classes, uint32_t base[], uint32_t above[][Lanes::kCount]) {
  if (num_classes > Lanes::kCount) return false;
  for (int64_t state = 0; state < Lanes::kCount; ++state) {
    base[state] = 0;
    for (int64_t j = 0; j + 1 < num_classes; ++j) above[j][state] = 0xffffffffu;
  }
  for (int64_t state = 0; state < num_classes; ++state) {
    const double* row = cdf + state * num_classes;
    for (int64_t j = 0; j + 1 < num_classes; ++j) {
      if (!(row[j] <= row[j + 1])) return false;  // not nondecreasing (or NaN): the scalar search
      const double t = std::ceil(row[j] * 4294967296.0);
      if (t <= 0.0) {
        ++base[state];
      } else if (t < 4294967296.0) {
        above[j][state] = static_cast<uint32_t>(t) - 1u;
      }
    }
  }
  return true;
}

inline bool transition_rows(const int64_t* x, int64_t* y, int64_t* negatives, const PerturbShape& shape,
                            const double* cdf, int64_t num_classes, int64_t begin, int64_t end) {
  constexpr int kCount = Lanes::kCount;
  alignas(64) uint32_t base[kCount], above[kCount][kCount], states[kCount];
  if (!transition_tables(cdf, num_classes, base, above)) return false;
  const I base_table = Lanes::load(base);
  I above_tables[kCount];
  for (int64_t j = 0; j + 1 < num_classes; ++j) above_tables[j] = Lanes::load(above[j]);
  const int64_t dim = shape.dim, blocks = core::blocks_per_row(dim);
  // The negatives' shared input row as 32-bit states, padded to whole blocks for the gathers.
  std::vector<uint32_t> row_states(static_cast<size_t>(blocks * core::kCoordsPerBlock), 0u);
  for_each_stage(x, y, negatives, shape, begin, end, [&](const Stage& stage, const int64_t* in, int64_t* out) {
    if (!stage.streams_are_rows) {
      for (int64_t d = 0; d < dim; ++d) row_states[static_cast<size_t>(d)] = static_cast<uint32_t>(in[d]);
    }
    for_each_batch(shape.seed, stage, blocks,
                   [&](int64_t first, int n, const uint32_t* block_of, const uint32_t* stream_of, const I* words) {
                     const I first_coordinate = Lanes::shift_left<2>(Lanes::load(block_of));
                     I states_of[4];
                     for (int k = 0; k < core::kCoordsPerBlock; ++k) {
                       if (stage.streams_are_rows) {  // y's stage: each lane reads its own row
                         for (int lane = 0; lane < kCount; ++lane) {
                           const int64_t d = static_cast<int64_t>(block_of[lane]) * core::kCoordsPerBlock + k;
                           const int64_t row = stream_of[lane] - stage.first_stream;
                           states[lane] = lane < n && d < dim ? static_cast<uint32_t>(in[row * dim + d]) : 0u;
                         }
                         states_of[k] = Lanes::load(states);
                       } else {
                         states_of[k] = Lanes::gather(row_states.data(), Lanes::add(first_coordinate, Lanes::set1(k)));
                       }
                     }
                     I counts[4];
                     for (int k = 0; k < core::kCoordsPerBlock; ++k) {
                       I count = Lanes::lookup(base_table, states_of[k]);
                       for (int64_t j = 0; j + 1 < num_classes; ++j) {
                         count = Lanes::add_one_where(Lanes::greater_u32(words[k], Lanes::lookup(above_tables[j], states_of[k])), count);
                       }
                       counts[k] = count;
                     }
                     write_batch(counts, first, n, dim, block_of, stream_of, stage, in, in,
                                 [&](int64_t c, const int64_t*, const uint32_t* next, int64_t len) {
                                   state_run(out + c, next, len);
                                 });
                   });
  });
  return true;
}

// Spreads the low 16 bits of x to every fourth bit: bit i -> bit 4i.
inline uint64_t spread_by_4(uint64_t x) {
  x &= 0xffff;
  x = (x | (x << 24)) & 0x000000ff000000ffull;
  x = (x | (x << 12)) & 0x000f000f000f000full;
  x = (x | (x << 6)) & 0x0303030303030303ull;
  x = (x | (x << 3)) & 0x1111111111111111ull;
  return x;
}

// The flips of dense Bernoulli streams as bitmaps, for the fused kernels (no negative is
// written): bit d of bitmap[s * words + d / 64], words = ceil(dim / 64), is set where word d of
// stream first_stream + s of `row` is below `threshold` (bernoulli_block's flip), for d < dim;
// bits past dim are zero. A batch is kCount consecutive blocks of one stream: 4 * kCount
// consecutive coordinates, the lanes' four comparison masks interleaved bit by bit.
inline void dense_flip_bitmap(uint64_t seed, uint64_t row, uint32_t first_stream, int64_t streams, int64_t dim,
                              uint64_t threshold, uint64_t* bitmap) {
  constexpr int kCount = Lanes::kCount;  // 16 (64 coordinates per batch) or 8 (32)
  const int64_t blocks = core::blocks_per_row(dim), words = (dim + 63) / 64;
  const I limit = Lanes::set1(static_cast<uint32_t>(threshold));
  const I row_lo = Lanes::set1(static_cast<uint32_t>(row)), row_hi = Lanes::set1(static_cast<uint32_t>(row >> 32));
  for (int64_t s = 0; s < streams; ++s) {
    uint64_t* out = bitmap + s * words;
    const I stream = Lanes::set1(first_stream + static_cast<uint32_t>(s));
    for (int64_t first = 0; first < blocks; first += kCount) {
      I w[4] = {Lanes::add(Lanes::lane_index(), Lanes::set1(static_cast<uint32_t>(first))), stream, row_lo, row_hi};
      philox(w, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
      uint64_t bits = 0;
      for (int k = 0; k < 4; ++k) bits |= spread_by_4(Lanes::mask_bits(Lanes::less_u32(w[k], limit))) << k;
      const int64_t coordinate = first * core::kCoordsPerBlock;
      if (coordinate % 64 == 0) out[coordinate / 64] = bits;
      else out[coordinate / 64] |= bits << 32;  // the second half of a word (8 lanes)
    }
    if (dim % 64 != 0) out[words - 1] &= (uint64_t{1} << (dim % 64)) - 1;
  }
}

// Word 0 of block 0 of streams first_stream + s, s < streams, of `row` (BitFlip's one draw per
// stream, core::bitflip_coordinate), kCount streams per Philox batch.
inline void first_words(uint64_t seed, uint64_t row, uint32_t first_stream, int64_t streams, uint32_t* out) {
  constexpr int kCount = Lanes::kCount;
  alignas(64) uint32_t words[kCount];
  const I row_lo = Lanes::set1(static_cast<uint32_t>(row)), row_hi = Lanes::set1(static_cast<uint32_t>(row >> 32));
  for (int64_t s = 0; s < streams; s += kCount) {
    I w[4] = {Lanes::set1(0), Lanes::add(Lanes::lane_index(), Lanes::set1(first_stream + static_cast<uint32_t>(s))), row_lo,
              row_hi};
    philox(w, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
    Lanes::store(words, w[0]);
    const int64_t n = streams - s < kCount ? streams - s : kCount;
    for (int64_t k = 0; k < n; ++k) out[s + k] = words[k];
  }
}
