// siplb: the daemon's command line. Foreground (systemd style), structured
// logs on stderr.
//   siplb --config FILE          run
//   siplb --config FILE --check  validate the config and exit
#include <cstdio>
#include <filesystem>
#include <string>

#include "daemon.h"
#include "siplb/control/log.h"
#include "siplb_build_config.h"

namespace {

void usage(FILE* out) {
    std::fprintf(out,
                 "usage: siplb --config FILE [--check]\n"
                 "  --config FILE  configuration (TOML), e.g. /etc/siplb/siplb.toml\n"
                 "  --check        validate the configuration and exit (0: valid)\n"
                 "  --version      print the version\n"
                 "Signals: SIGTERM/SIGINT stop cleanly (after [control] stop_grace_ms; a second\n"
                 "one stops at once), SIGHUP reloads the configuration.\n");
}

}  // namespace

int main(int argc, char** argv) {
    std::string config_path;
    bool check = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--config" && i + 1 < argc) {
            config_path = argv[++i];
        } else if (a.rfind("--config=", 0) == 0) {
            config_path = a.substr(9);
        } else if (a == "--check") {
            check = true;
        } else if (a == "--version") {
            std::printf("siplb %s\n", SIPLB_VERSION);
            return 0;
        } else if (a == "--help" || a == "-h") {
            usage(stdout);
            return 0;
        } else {
            std::fprintf(stderr, "siplb: unknown argument '%s'\n", a.c_str());
            usage(stderr);
            return 2;
        }
    }
    if (config_path.empty()) {
        usage(stderr);
        return 2;
    }
    {
        // Absolute, so reload and `status` name the same file whatever the cwd.
        std::error_code ec;
        auto abs = std::filesystem::absolute(config_path, ec);
        if (!ec) config_path = abs.lexically_normal().string();
    }
    auto cfg = siplb::config::load_config(config_path);
    if (!cfg) {
        siplb::control::log(siplb::control::LogLevel::error, "invalid configuration",
                            {{"config", config_path}, {"error", cfg.message()}});
        return 2;
    }
    if (check) {
        // Also build every pool's table: a config that loads but cannot be
        // balanced is not valid either.
        siplb::control::set_log_level(siplb::control::LogLevel::error);
        if (auto s = siplb::daemon::check_config(*cfg); !s) {
            std::fprintf(stderr, "siplb: %s: %s\n", config_path.c_str(), s.message().c_str());
            return 2;
        }
        std::printf("%s: configuration valid (%zu pools, %zu ports)\n", config_path.c_str(), cfg->pools.size(),
                    cfg->dataplane.ports.size());
        return 0;
    }
    siplb::daemon::Daemon daemon(std::move(*cfg));
    return daemon.run();
}
