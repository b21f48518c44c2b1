// siplbctl subcommands register themselves here, one file per command
// (cmd_<name>.cpp), so commands are added without touching main.cpp.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace siplb::cli {

// argv[0] is the subcommand name; returns the process exit code.
using CommandFn = std::function<int(int argc, char** argv)>;

struct Command {
    std::string name;
    std::string usage;    // one line: "parse FILE..."
    std::string summary;  // one line description
    CommandFn run;
};

std::vector<Command>& command_registry();

struct CommandRegistrar {
    explicit CommandRegistrar(Command c) { command_registry().push_back(std::move(c)); }
};

}  // namespace siplb::cli
