#pragma once
// Shared argument handling for the moe sub-commands (Boost.Program_options).
#include <boost/program_options.hpp>

#include <iostream>
#include <string>
#include <vector>

namespace moe {

/// Parses args into vm. Returns -1 to go on, or the exit status to return now: 0 after
/// printing the usage for --help, 2 after printing it when `required` (a positional
/// option's name, or empty for none) is missing.
inline int parse_args(const std::vector<std::string>& args,
                      const boost::program_options::options_description& desc,
                      const boost::program_options::positional_options_description& pos,
                      boost::program_options::variables_map& vm, const std::string& required) {
  namespace po = boost::program_options;
  po::store(po::command_line_parser(args).options(desc).positional(pos).run(), vm);
  po::notify(vm);
  if (vm.count("help")) {
    std::cout << desc;
    return 0;
  }
  if (!required.empty() && !vm.count(required)) {
    std::cout << desc;
    return 2;
  }
  return -1;
}

}  // namespace moe
