// siplbctl: operator tool. Offline commands (parse, lookup) work on files;
// online commands talk to the daemon's control socket.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "command.h"
#include "siplb_build_config.h"

namespace siplb::cli {

std::vector<Command>& command_registry() {
    static std::vector<Command> registry;
    return registry;
}

}  // namespace siplb::cli

static void usage(FILE* out) {
    auto cmds = siplb::cli::command_registry();
    std::sort(cmds.begin(), cmds.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    std::fprintf(out, "usage: siplbctl COMMAND [ARGS...]\n\ncommands:\n");
    for (const auto& c : cmds) std::fprintf(out, "  %-44s %s\n", c.usage.c_str(), c.summary.c_str());
    std::fprintf(out, "\n  siplbctl COMMAND --help   details of one command\n");
}

// Global options may come before the command as well ("siplbctl --socket
// /run/x.sock status", as with systemctl or git -C): they are moved behind
// the command name, where every online command parses them.
static std::vector<char*> options_after_command(int argc, char** argv) {
    std::vector<char*> lead, out{argv[0]};
    int i = 1;
    while (i < argc) {
        const std::string a = argv[i];
        const bool takes_value = a == "--socket" || a == "-s" || a == "--timeout";
        if (takes_value && i + 1 < argc) {
            lead.push_back(argv[i]);
            lead.push_back(argv[i + 1]);
            i += 2;
        } else if (a == "--json" || a.rfind("--socket=", 0) == 0) {
            lead.push_back(argv[i++]);
        } else {
            break;
        }
    }
    if (i < argc) out.push_back(argv[i++]);  // the command
    out.insert(out.end(), lead.begin(), lead.end());
    for (; i < argc; ++i) out.push_back(argv[i]);
    out.push_back(nullptr);
    return out;
}

int main(int argc, char** argv) {
    std::vector<char*> args = options_after_command(argc, argv);
    argc = static_cast<int>(args.size()) - 1;
    argv = args.data();
    if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!std::strcmp(argv[1], "--version")) {
        std::printf("siplbctl %s\n", SIPLB_VERSION);
        return 0;
    }
    for (const auto& c : siplb::cli::command_registry()) {
        if (c.name == argv[1]) return c.run(argc - 1, argv + 1);
    }
    std::fprintf(stderr, "siplbctl: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
