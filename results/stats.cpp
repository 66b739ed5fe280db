#include "results/stats.h"

#include <algorithm>
#include <boost/math/distributions/students_t.hpp>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>

namespace moe::results {

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
}

MeanCI mean_ci95(const std::vector<double>& x) {
  MeanCI r;
  r.n = x.size();
  if (x.empty()) {
    r.mean = r.lo = r.hi = kNaN;
    return r;
  }
  r.mean = std::accumulate(x.begin(), x.end(), 0.0) / static_cast<double>(r.n);
  if (r.n < 2) {
    r.lo = r.hi = kNaN;
    return r;
  }
  double ss = 0;
  for (double v : x) ss += (v - r.mean) * (v - r.mean);
  r.sd = std::sqrt(ss / static_cast<double>(r.n - 1));
  const boost::math::students_t dist(static_cast<double>(r.n - 1));
  const double half =
      boost::math::quantile(dist, 0.975) * r.sd / std::sqrt(static_cast<double>(r.n));
  r.lo = r.mean - half;
  r.hi = r.mean + half;
  return r;
}

PairedTest paired_t_test(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) throw std::invalid_argument("paired_t_test: samples differ in length");
  std::vector<double> d(a.size());
  for (size_t i = 0; i < a.size(); ++i) d[i] = a[i] - b[i];
  PairedTest r;
  r.diff = mean_ci95(d);
  if (d.size() < 2) {
    r.t = r.p = kNaN;
    return r;
  }
  if (r.diff.sd == 0) {  // every pair differs by the same amount
    r.t = r.diff.mean == 0 ? 0 : std::copysign(INFINITY, r.diff.mean);
    r.p = r.diff.mean == 0 ? 1 : 0;
    return r;
  }
  r.t = r.diff.mean / (r.diff.sd / std::sqrt(static_cast<double>(d.size())));
  const boost::math::students_t dist(static_cast<double>(d.size() - 1));
  r.p = 2 * boost::math::cdf(boost::math::complement(dist, std::fabs(r.t)));
  return r;
}

std::vector<double> holm_adjust(const std::vector<double>& p) {
  std::vector<size_t> order;
  for (size_t i = 0; i < p.size(); ++i)
    if (!std::isnan(p[i])) order.push_back(i);
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) { return p[x] < p[y]; });
  std::vector<double> out(p.size(), kNaN);
  const double m = static_cast<double>(order.size());
  double running = 0;
  for (size_t j = 0; j < order.size(); ++j) {
    running = std::max(running, std::min(1.0, (m - static_cast<double>(j)) * p[order[j]]));
    out[order[j]] = running;
  }
  return out;
}

}  // namespace moe::results
