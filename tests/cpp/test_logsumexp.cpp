// C++ tests of csrc/core/contrastive.h: the online logsumexp, its merges and non-finite terms.
#include "harness.h"

// ------------------------------------------------------------------------ 6. logsumexp

template <typename T>
long double naive_lse(const std::vector<T>& values) {
  long double m = -std::numeric_limits<long double>::infinity();
  for (T v : values) m = std::max<long double>(m, v);
  long double s = 0;
  for (T v : values) s += std::exp(static_cast<long double>(v) - m);
  return m + std::log(s);
}

template <typename T>
OnlineLogSumExp<T> lse_of(const std::vector<T>& values, size_t begin, size_t end) {
  auto lse = OnlineLogSumExp<T>::empty();
  for (size_t i = begin; i < end; ++i) lse.push(values[i]);
  return lse;
}

template <typename T>
bool same_state(const OnlineLogSumExp<T>& a, const OnlineLogSumExp<T>& b) {
  return std::memcmp(&a.max, &b.max, sizeof(T)) == 0 && std::memcmp(&a.sum, &b.sum, sizeof(T)) == 0;
}

template <typename T>
void check_logsumexp(const char* type_name, double rel_tol) {
  const T inf = std::numeric_limits<T>::infinity();
  const T nan = std::numeric_limits<T>::quiet_NaN();
  std::mt19937_64 rng(1234);
  double worst = 0.0;
  for (int trial = 0; trial < 200; ++trial) {
    const size_t n = 1 + rng() % 300;
    const double spread = trial % 4 == 0 ? 1e4 : (trial % 4 == 1 ? 50.0 : 3.0);
    std::uniform_real_distribution<double> dist(-spread, spread);
    std::vector<T> values(n);
    for (T& v : values) v = static_cast<T>(dist(rng));
    const long double want = naive_lse(values);
    const double scale = std::max(1.0, std::fabs(static_cast<double>(want)));

    auto err = [&](T got) { return std::fabs(static_cast<double>(got - static_cast<T>(want))) / scale; };
    const T forward = lse_of(values, 0, n).value();
    worst = std::max(worst, err(forward));
    std::vector<T> shuffled = values;
    std::shuffle(shuffled.begin(), shuffled.end(), rng);
    worst = std::max(worst, err(lse_of(shuffled, 0, n).value()));
    std::sort(shuffled.begin(), shuffled.end());
    worst = std::max(worst, err(lse_of(shuffled, 0, n).value()));  // ascending: max moves each push
    const size_t cut = rng() % (n + 1);  // halves may be empty
    auto left = lse_of(values, 0, cut), right = lse_of(values, cut, n);
    auto merged_lr = left;
    merged_lr.merge(right);
    auto merged_rl = right;
    merged_rl.merge(left);
    worst = std::max(worst, err(merged_lr.value()));
    worst = std::max(worst, err(merged_rl.value()));
    CHECK(std::isfinite(static_cast<double>(forward)), "%s trial %d not finite", type_name, trial);
  }
  std::printf("  OnlineLogSumExp<%s>: worst error %.3g (relative to max(1, |L|))\n", type_name, worst);
  CHECK(worst <= rel_tol, "%s: worst %.3g > %.3g", type_name, worst, rel_tol);

  // push_weight(0) is a no-op; push_weight(w) equals push(log w).
  auto lse = lse_of(std::vector<T>{T(1), T(-2)}, 0, 2);
  auto same = lse;
  same.push_weight(T(0));
  CHECK(same_state(lse, same), "%s: push_weight(0) changed the state", type_name);
  auto empty = OnlineLogSumExp<T>::empty();
  empty.push_weight(T(0));
  CHECK(same_state(empty, OnlineLogSumExp<T>::empty()), "%s: push_weight(0) on empty", type_name);
  auto weighted = lse, logged = lse;
  weighted.push_weight(T(3));
  logged.push(std::log(T(3)));
  CHECK(same_state(weighted, logged), "%s: push_weight(3) != push(log 3)", type_name);

  // Energies of magnitude 1e4: finite and right.
  auto big = OnlineLogSumExp<T>::empty();
  big.push_weight(T(1));
  big.push(T(1e4));
  big.push(T(-1e4));
  big.push(T(1e4) - T(1));
  const T big_value = big.value();
  CHECK(std::isfinite(static_cast<double>(big_value)), "%s: 1e4 energies gave %g", type_name,
        static_cast<double>(big_value));
  CHECK(std::fabs(static_cast<double>(big_value) - (1e4 + std::log1p(std::exp(-1.0)))) <= 1e4 * rel_tol,
        "%s: 1e4 energies gave %.9g", type_name, static_cast<double>(big_value));
  auto low = OnlineLogSumExp<T>::empty();
  low.push(T(-1e4));
  low.push(T(-1e4));
  CHECK(std::fabs(static_cast<double>(low.value()) - (-1e4 + std::log(2.0))) <= 1e4 * rel_tol,
        "%s: two -1e4 terms gave %.9g", type_name, static_cast<double>(low.value()));

  // -inf terms contribute nothing; empty gives -inf.
  CHECK(OnlineLogSumExp<T>::empty().value() == -inf, "%s: empty value", type_name);
  auto only_neg_inf = OnlineLogSumExp<T>::empty();
  only_neg_inf.push(-inf);
  only_neg_inf.push(-inf);
  CHECK(only_neg_inf.value() == -inf, "%s: only -inf terms", type_name);
  auto with_neg_inf = lse;
  with_neg_inf.push(-inf);
  CHECK(same_state(with_neg_inf, lse), "%s: -inf term changed the state", type_name);
  auto neg_inf_first = OnlineLogSumExp<T>::empty();
  neg_inf_first.push(-inf);
  neg_inf_first.push(T(1));
  neg_inf_first.push(T(-2));
  CHECK(same_state(neg_inf_first, lse), "%s: leading -inf term changed the state", type_name);
  auto merged_empty = lse;
  merged_empty.merge(only_neg_inf);
  CHECK(same_state(merged_empty, lse), "%s: merging an empty state changed the state", type_name);
  auto empty_merged = OnlineLogSumExp<T>::empty();
  empty_merged.merge(lse);
  CHECK(same_state(empty_merged, lse), "%s: merging into an empty state", type_name);

  // NaN propagates: pushed first, in the middle or last, and through merge either way.
  const std::vector<T> base = {T(0.5), T(2), T(-1)};
  for (size_t at = 0; at <= base.size(); ++at) {
    std::vector<T> values = base;
    values.insert(values.begin() + static_cast<std::ptrdiff_t>(at), nan);
    CHECK(std::isnan(static_cast<double>(lse_of(values, 0, values.size()).value())),
          "%s: NaN at position %zu lost", type_name, at);
  }
  auto finite = lse_of(base, 0, base.size());
  auto nan_after_finite = finite;
  nan_after_finite.push(nan);
  auto nan_only = OnlineLogSumExp<T>::empty();
  nan_only.push(nan);
  CHECK(std::isnan(static_cast<double>(nan_only.value())), "%s: NaN alone", type_name);
  {
    auto s = finite;
    s.merge(nan_after_finite);
    CHECK(std::isnan(static_cast<double>(s.value())), "%s: merge(finite <- finite+NaN)", type_name);
  }
  {
    auto s = nan_after_finite;
    s.merge(finite);
    CHECK(std::isnan(static_cast<double>(s.value())), "%s: merge(finite+NaN <- finite)", type_name);
  }
  {
    auto s = nan_only;
    s.merge(finite);
    CHECK(std::isnan(static_cast<double>(s.value())), "%s: merge(NaN-only <- finite)", type_name);
  }
  // merge(finite <- NaN-only) is a known issue: see known_issue_nan_only_merge below.

  // contrast_weight: p_ij = exp(e_pos - e_neg - L), the p's of a row sum to 1 when w = 0.
  std::vector<T> e_neg = {T(3), T(-1), T(0.25), T(10)};
  const T e_pos = T(2);
  auto row = OnlineLogSumExp<T>::empty();
  for (T e : e_neg) row.push(e_pos - e);
  const T normaliser = row.value();
  double total = 0;
  for (T e : e_neg) total += contrast_weight(e_pos, e, normaliser);
  CHECK(std::fabs(total - 1.0) <= 8 * rel_tol, "%s: sum p = %.9g", type_name, total);
}

TEST_CASE(core, online_logsumexp) {
  check_logsumexp<float>("float", 2e-6);
  check_logsumexp<double>("double", 1e-14);
}

// ------------------------------------------------------------------------ non-finite terms

// A state whose only term was NaN must keep it through a merge: a CUDA warp lane holding a
// single NaN term merges exactly so in the shuffle reduction of csrc/cuda/contrastive.cu.
template <typename T>
void check_nan_only_merge(const char* type_name) {
  const T nan = std::numeric_limits<T>::quiet_NaN();
  auto finite = OnlineLogSumExp<T>::empty();
  finite.push(T(0.5));
  finite.push(T(2));
  auto nan_only = OnlineLogSumExp<T>::empty();
  nan_only.push(nan);
  auto s = finite;
  s.merge(nan_only);
  CHECK(std::isnan(static_cast<double>(s.value())), "%s: merge(finite <- NaN-only) lost the NaN",
        type_name);
}

// Two +inf terms give +inf, as torch.logsumexp does, not exp(inf - inf) = NaN.
template <typename T>
void check_two_infinities(const char* type_name) {
  const T inf = std::numeric_limits<T>::infinity();
  auto pushed = OnlineLogSumExp<T>::empty();
  pushed.push(inf);
  pushed.push(T(1));
  pushed.push(inf);
  CHECK(pushed.value() == inf, "%s: push(inf) twice is not +inf", type_name);
  auto left = OnlineLogSumExp<T>::empty(), right = OnlineLogSumExp<T>::empty();
  left.push(inf);
  right.push(inf);
  left.merge(right);
  CHECK(left.value() == inf, "%s: merge of two +inf states is not +inf", type_name);
  auto empty = OnlineLogSumExp<T>::empty();
  empty.push(-inf);
  CHECK(empty.value() == -inf, "%s: a lone -inf term is not -inf", type_name);
}

TEST_CASE(core, non_finite_terms) {
  check_nan_only_merge<float>("float");
  check_nan_only_merge<double>("double");
  check_two_infinities<float>("float");
  check_two_infinities<double>("double");
}
