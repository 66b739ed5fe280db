// moe: the moe-lab command line.
#include <boost/program_options/errors.hpp>

#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "core/error_text.h"
#include "core/train/device.h"
#include "experiments/commands.h"

namespace {

constexpr const char* kUsage =
    "moe-lab: train, sweep and compare Mixture-of-Experts routing methods\n\n"
    "Usage: moe <command> [options]   (moe <command> --help for its options)\n"
    "       moe --version                 (code version, LibTorch version, CUDA or CPU build)\n\n"
    "Commands:\n"
    "  train     train one config and print its final metrics\n"
    "  sweep     plan / run / status of a sweep file (resumable, parallel, sharded)\n"
    "  query     read-only SQL over a results database (views: final, by_method, pareto,\n"
    "            paired, selected, layers, reevals)\n"
    "  plot      figures from a results database (gnuplot, PNG + SVG)\n"
    "  compare   per-method 95% CIs and paired tests against a baseline over seeds\n"
    "  report    one self-contained HTML page per sweep (tables, plots, config diff)\n"
    "  merge     join shard databases\n"
    "  tokenize  UTF-8 text -> token files (SentencePiece BPE / unigram, or bytes)\n"
    "  plugins   list the registered routers, expert banks, adapters and tasks\n";

}  // namespace

int main(int argc, char** argv) {
  const std::map<std::string, int (*)(const std::vector<std::string>&)> commands = {
      {"train", &moe::train_command},      {"plugins", &moe::plugins_command},
      {"sweep", &moe::sweep_command},      {"query", &moe::query_command},
      {"plot", &moe::plot_command},        {"merge", &moe::merge_command},
      {"compare", &moe::compare_command},  {"report", &moe::report_command},
      {"tokenize", &moe::tokenize_command}};
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::cout << kUsage;
    return argc < 2 ? 2 : 0;
  }
  if (std::string(argv[1]) == "--version") {
    std::cout << "moe-lab " << MOE_CODE_VERSION << ", " << moe::build_description() << "\n";
    return 0;
  }
  moe::configure_allocator();
  moe::configure_enforce_throws();
  const auto it = commands.find(argv[1]);
  if (it == commands.end()) {
    std::cerr << "moe: unknown command '" << argv[1] << "'\n\n" << kUsage;
    return 2;
  }
  try {
    return it->second(std::vector<std::string>(argv + 2, argv + argc));
  } catch (const boost::program_options::error& e) {
    std::cerr << "moe " << argv[1] << ": " << e.what() << " (see moe " << argv[1] << " --help)\n";
  } catch (const std::exception& e) {
    std::cerr << "\nmoe " << argv[1] << ": error: " << moe::error_text(e) << "\n";
  }
  return 1;
}
