// Writes a ratings.csv shaped like MovieLens 20M's (userId,movieId,rating,timestamp; users in
// order, each with >= 20 ratings of distinct movies drawn with Zipf-like popularity), for the
// parsing benchmark. Deterministic for given arguments.
//   rzoo_gen_ratings OUT.csv [lines=20000263] [users=138493] [items=26744]
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s OUT.csv [lines] [users] [items]\n", argv[0]);
    return 2;
  }
  const int64_t lines = argc > 2 ? std::atoll(argv[2]) : 20000263;
  const int64_t users = argc > 3 ? std::atoll(argv[3]) : 138493;
  const int64_t items = argc > 4 ? std::atoll(argv[4]) : 26744;
  if (users < 1 || items < 20 || lines < 20 * users) {
    std::fprintf(stderr, "need users >= 1, items >= 20, lines >= 20 * users\n");
    return 2;
  }
  std::mt19937_64 rng(20);
  // Ratings per user: 20 + a heavy-tailed (log-normal) share of the rest, summing to `lines`.
  std::lognormal_distribution<double> lognorm(0.0, 1.3);
  std::vector<double> w(static_cast<size_t>(users));
  double total = 0;
  for (auto& x : w) total += (x = lognorm(rng));
  std::vector<int64_t> count(static_cast<size_t>(users));
  int64_t extra = lines - 20 * users, given = 0;
  for (int64_t u = 0; u < users; ++u) {
    count[static_cast<size_t>(u)] = 20 + std::min<int64_t>(items - 20, static_cast<int64_t>(std::floor(static_cast<double>(extra) * w[static_cast<size_t>(u)] / total)));
    given += count[static_cast<size_t>(u)];
  }
  for (int64_t u = 0; given < lines; u = (u + 1) % users)  // rounding remainder
    if (count[static_cast<size_t>(u)] < items) { ++count[static_cast<size_t>(u)]; ++given; }
  // Movie ids spread over [1, 131262] like ML-20M's; popularity ~ 1 / rank^0.9.
  std::vector<int64_t> id(static_cast<size_t>(items));
  for (int64_t i = 0; i < items; ++i) id[static_cast<size_t>(i)] = 1 + (i * 131261) / items;
  std::vector<double> cdf(static_cast<size_t>(items));
  double c = 0;
  for (int64_t i = 0; i < items; ++i) cdf[static_cast<size_t>(i)] = (c += 1.0 / std::pow(static_cast<double>(i + 1), 0.9));
  for (auto& x : cdf) x /= c;
  std::uniform_real_distribution<double> unif(0.0, 1.0);
  std::vector<int64_t> seen(static_cast<size_t>(items), -1);
  FILE* out = std::fopen(argv[1], "wb");
  if (!out) {
    std::perror(argv[1]);
    return 1;
  }
  std::string buf;
  buf.reserve(1 << 22);
  buf += "userId,movieId,rating,timestamp\n";
  char line[64];
  for (int64_t u = 0; u < users; ++u) {
    int64_t t = 828000000 + static_cast<int64_t>(unif(rng) * 600000000.0);
    for (int64_t k = 0; k < count[static_cast<size_t>(u)]; ++k) {
      int64_t i;
      do {
        // Mostly popularity-driven; sometimes uniform, so users with many ratings finish quickly.
        i = unif(rng) < 0.9 ? std::lower_bound(cdf.begin(), cdf.end(), unif(rng)) - cdf.begin()
                            : static_cast<int64_t>(unif(rng) * static_cast<double>(items));
        i = std::min(i, items - 1);
      } while (seen[static_cast<size_t>(i)] == u);
      seen[static_cast<size_t>(i)] = u;
      const int half_stars = 1 + static_cast<int>(rng() % 10);
      t += static_cast<int64_t>(rng() % 5000);
      const int n = std::snprintf(line, sizeof line, "%lld,%lld,%d.%d,%lld\n", static_cast<long long>(u + 1),
                                  static_cast<long long>(id[static_cast<size_t>(i)]), half_stars / 2, (half_stars % 2) * 5,
                                  static_cast<long long>(t));
      buf.append(line, static_cast<size_t>(n));
      if (buf.size() > (1u << 22) - 64) {
        std::fwrite(buf.data(), 1, buf.size(), out);
        buf.clear();
      }
    }
  }
  std::fwrite(buf.data(), 1, buf.size(), out);
  return std::fclose(out) == 0 ? 0 : 1;
}
