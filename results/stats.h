#pragma once
// Statistics for comparing methods over seeds (no LibTorch): Student-t confidence
// intervals, the paired t-test and Holm's step-down adjustment. The t distribution comes
// from Boost.Math.
#include <cstddef>
#include <vector>

namespace moe::results {

struct MeanCI {
  size_t n = 0;
  double mean = 0, sd = 0;  ///< sample standard deviation (n - 1); 0 for n < 2
  double lo = 0, hi = 0;    ///< two-sided 95% CI from Student's t; NaN for n < 2
};

/// Mean and 95% confidence interval (mean +- t_{0.975, n-1} sd / sqrt(n)).
MeanCI mean_ci95(const std::vector<double>& x);

struct PairedTest {
  MeanCI diff;   ///< of the paired differences a_i - b_i
  double t = 0;  ///< mean / (sd / sqrt(n)); +-inf when sd = 0 and mean != 0
  double p = 1;  ///< two-sided; NaN for n < 2; 1 when every difference is 0
};

/// Paired t-test of a against b (equal lengths: a[i] and b[i] share seed i).
PairedTest paired_t_test(const std::vector<double>& a, const std::vector<double>& b);

/// Holm (1979) step-down adjusted p-values, in the input order; NaN entries stay NaN and do
/// not count towards the number of tests.
std::vector<double> holm_adjust(const std::vector<double>& p);

}  // namespace moe::results
