// moe report: escaping, embeddable SVG, and the page checked in a real (headless) browser.
#include "results/html_report.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "results/store.h"
#include "tests/test_util.h"

namespace moe::results {
namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(HtmlReport, EscapesEverythingThatCouldOpenATag) {
  EXPECT_EQ(html_escape("<script>alert(1)</script>"), "&lt;script&gt;alert(1)&lt;/script&gt;");
  EXPECT_EQ(html_escape("a & b \"c\" 'd'"), "a &amp; b &quot;c&quot; &#39;d&#39;");
}

TEST(HtmlReport, InlineSvgDropsThePrologAndPrefixesIds) {
  const std::string svg =
      "<?xml version=\"1.0\"?>\n<svg grid=\"1\"><defs><path id='gpPt0'/></defs>"
      "<g id=\"canvas\"><use xlink:href='#gpPt0'/><use href=\"#canvas\"/>"
      "<rect fill=\"url(#grad)\"/></g></svg>";
  EXPECT_EQ(inline_svg(svg, "p1_"),
            "<svg grid=\"1\"><defs><path id='p1_gpPt0'/></defs>"
            "<g id=\"p1_canvas\"><use xlink:href='#p1_gpPt0'/><use href=\"#p1_canvas\"/>"
            "<rect fill=\"url(#p1_grad)\"/></g></svg>");
}

class ReportFixture : public ::testing::Test {
 protected:
  /// Two methods x 3 seeds (one named like a script), a failed run with markup in its
  /// message, per-layer statistics and a training curve.
  std::string make_db() {
    const auto db = tmp_.file("r.sqlite");
    Store s(db);
    int i = 0;
    for (const std::string m : {"dense", "<script>alert(1)</script>"}) {
      for (int64_t seed = 0; seed < 3; ++seed) {
        const std::string key = "k" + std::to_string(i++);
        nlohmann::json cfg = {{"seed", seed},
                              {"model", {{"moe_every", m == "dense" ? 0 : 1}}},
                              {"train", {{"lr", 0.003}}}};
        s.ensure_run({key, "demo", m, cfg.dump(), seed, "", "", ""});
        const auto id = s.start_run(key, "host", 1, "cpu", "LibTorch 1.13.1", "abc");
        const double acc = (m == "dense" ? 0.5 : 0.6) + 0.01 * seed;
        for (int64_t step = 10; step <= 30; step += 10)
          s.add_metric(id, step, "train", "loss", 2.0 - step / 30.0 - (m == "dense" ? 0 : 0.1));
        for (const auto& [name, v] : std::map<std::string, double>{{"test_accuracy", acc},
                                                                   {"test_loss", 1 - acc},
                                                                   {"nonembed_active_params", 1000},
                                                                   {"active_params", 5000},
                                                                   {"flops_per_token", 2000}})
          s.add_metric(id, 30, "final", name, v);
        s.add_metric(id, 30, "test", "level_accuracy", acc + 0.1, {std::nullopt, "easy", "", 0});
        s.add_metric(id, 30, "test", "level_accuracy", acc - 0.1, {std::nullopt, "hard", "", 0});
        if (m != "dense") {
          for (int64_t layer = 0; layer < 2; ++layer) {
            s.add_layer_stat(id, 30, "test", layer, "mean_experts", 1.0);
            s.add_layer_stat(id, 30, "test", layer, "experts_hist", 1.0, {1, "", "", 0});
            for (int64_t e = 0; e < 4; ++e)
              s.add_layer_stat(id, 30, "test", layer, "load", e == 3 ? 0 : 1 / 3.0, {e, "", "", 0});
          }
        }
        s.finish_run(id, RunStatus::kCompleted, "");
      }
    }
    s.ensure_run({"bad", "demo", "dense", "{\"seed\": 9}", 9, "", "", ""});
    const auto id = s.start_run("bad", "host", 1, "cpu", "LibTorch 1.13.1", "abc");
    s.finish_run(id, RunStatus::kFailed, "<b>non-finite</b> training loss");
    return db;
  }
  moe::testing::TempDir tmp_;
};

TEST_F(ReportFixture, MethodNamesAndMessagesRenderAsText) {
  const auto db = make_db();
  const auto out = write_report({db, {}, "", tmp_.file("report.html")});
  const auto html = slurp(out);
  EXPECT_EQ(html.find("<script>alert"), std::string::npos) << "a method name became markup";
  EXPECT_EQ(html.find("<b>non-finite"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
  EXPECT_NE(html.find("&lt;b&gt;non-finite&lt;/b&gt; training loss"), std::string::npos);
  // The comparison, the config diff (moe_every differs, lr does not) and the environment.
  EXPECT_NE(html.find("<td>baseline</td>"), std::string::npos);
  EXPECT_NE(html.find("<td>model.moe_every</td>"), std::string::npos);
  EXPECT_EQ(html.find("<td>train.lr</td>"), std::string::npos);
  EXPECT_NE(html.find("LibTorch 1.13.1"), std::string::npos);
  // No reference leaves the file.
  EXPECT_EQ(html.find("src="), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
  if (std::system("command -v gnuplot >/dev/null 2>&1") == 0) {
    EXPECT_NE(html.find("id=\"plot-pareto\""), std::string::npos);
    EXPECT_NE(html.find("id=\"plot-load\""), std::string::npos);
    EXPECT_NE(html.find("id=\"plot-curves\""), std::string::npos);
  }
  moe::testing::expect_error(
      [&] {
        write_report({db, {"nope"}, "", ""});
      },
      "--sweep 'nope': not in");
}

/// The browser: Debian's chromium, when installed (.ci/run installs it).
std::string chromium() {
  for (const char* name : {"chromium", "chromium-browser"}) {
    if (std::system(("command -v " + std::string(name) + " >/dev/null 2>&1").c_str()) == 0)
      return name;
  }
  return "";
}

TEST_F(ReportFixture, OpensInHeadlessChromiumWithNoErrorAndNoRequest) {
  const auto browser = chromium();
  if (browser.empty()) GTEST_SKIP() << "chromium not installed (apt-get install chromium)";
  const auto db = make_db();
  const auto out = write_report({db, {"demo"}, "dense", tmp_.file("report.html")});
  const auto url = "file://" + std::filesystem::absolute(out).string() + "#selftest";
  const std::string cmd =
      // A hang guard, not a speed bound: on 2 loaded cores (ctest -j2 beside the Slurm test)
      // Chromium's start alone has taken over 20 s.
      "timeout 120 " + browser +
      " --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking"
      " --disable-component-update --disable-sync --enable-logging=stderr --v=0"
      " --user-data-dir=" +
      tmp_.file("profile") + " --dump-dom '" + url + "' > " + tmp_.file("dom.html") + " 2> " +
      tmp_.file("stderr.txt");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << slurp(tmp_.file("stderr.txt"));
  const auto dom = slurp(tmp_.file("dom.html"));
  const auto log = slurp(tmp_.file("stderr.txt"));
  // The page's own script ran to the end and saw no error and no fetched resource.
  EXPECT_NE(dom.find("data-errors=\"0\""), std::string::npos) << dom.substr(0, 400);
  EXPECT_NE(dom.find("data-resources=\"0\""), std::string::npos) << dom.substr(0, 400);
  EXPECT_NE(dom.find("data-selftest=\"desc\""), std::string::npos) << "sorting ran";
  EXPECT_EQ(log.find("CONSOLE"), std::string::npos) << "console output:\n" << log;
  EXPECT_NE(dom.find("<table class=\"sortable\""), std::string::npos);
  EXPECT_NE(dom.find("<svg"), std::string::npos);
}

}  // namespace
}  // namespace moe::results
