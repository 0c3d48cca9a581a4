// danerelay: the operator's command line. Reads the same configuration as the daemon; inspects
// the queue read-only and changes it in single transactions, safe while danerelayd runs. It
// never creates or migrates the queue (the daemon does).
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <functional>
#include <iostream>
#include <memory>
#include <vector>

#include "config/config.hpp"
#include "relay/daemon/logging.hpp"
#include "tools/cli/config_check.hpp"
#include "tools/cli/dane_check.hpp"
#include "tools/cli/dkim.hpp"
#include "tools/cli/passwd.hpp"
#include "tools/cli/queue_admin.hpp"
#include "tools/cli/queue_filters.hpp"
#include "tools/cli/queue_list.hpp"
#include "tools/cli/queue_show.hpp"
#include "tools/cli/queue_suspend.hpp"
#include "tools/cli/tls_rpt.hpp"

namespace {

using namespace danerelay;
constexpr int kExitConfig = 78;
constexpr int kExitUsage = 64;  // EX_USAGE

// The configuration, or nullopt after saying why on stderr.
std::optional<config::Config> LoadConfig(const std::string& path, bool dkim_keys = true) {
  auto cfg = config::LoadFileOrDefaults(path, dkim_keys);
  if (!cfg) {
    std::cerr << "danerelay: " << cfg.error().message << "\n";
    return std::nullopt;
  }
  return std::move(*cfg);
}

// `work` with the configuration, or kExitConfig after saying why it cannot be loaded.
int WithConfig(const std::string& path, const std::function<int(const config::Config&)>& work) {
  auto cfg = LoadConfig(path);
  if (!cfg) return kExitConfig;
  return work(*cfg);
}

// A command of the command line, and what it does once named. Its arguments live with `run`
// (the options are bound to them); the configuration path is main's, set by the time it runs.
struct Command {
  CLI::App* app;
  std::function<int()> run;
};
using Commands = std::vector<Command>;

void DeclareQueueList(CLI::App& queue, const std::string& config_path, Commands& commands) {
  struct Args {
    bool json = false, all = false;
    tools::QueueFilters filters;
    std::string recipient;
    CLI::Option* sender = nullptr;
  };
  auto args = std::make_shared<Args>();
  auto* list = queue.add_subcommand("list", "list queued messages, like mailq");
  list->add_flag("--json", args->json, "one JSON object per message per line");
  list->add_flag("--all", args->all, "include completed messages (all recipients final)");
  list->add_option("--domain", args->filters.domain,
                   "only messages with a recipient in this domain");
  // The same filters as the actions take, plus --recipient.
  list->add_option("ids", args->filters.ids, "queue IDs (default: all)");
  args->sender = list->add_option("--sender", args->filters.sender,
                                  "envelope sender (<> for the null sender)");
  list->add_option("--state", args->filters.state, "only recipients in this state");
  list->add_option("--older-than", args->filters.older_than,
                   "arrived longer ago than (5m, 2h, 3d)");
  list->add_option("--recipient", args->recipient, "only this recipient address");
  commands.push_back({list, [args, &config_path] {
                        tools::ListRequest req;
                        if (int bad = tools::ReadFilters(args->filters, req.selection, std::cerr)) {
                          return bad;
                        }
                        req.sender_given = args->sender->count() > 0;
                        req.recipient = args->recipient;
                        req.all = args->all;
                        req.json = args->json;
                        return WithConfig(config_path, [&](const config::Config& cfg) {
                          return tools::RunQueueList(cfg, req, std::cout, std::cerr);
                        });
                      }});
}

void DeclareQueueShow(CLI::App& queue, const std::string& config_path, Commands& commands) {
  struct Args {
    std::string id;
    bool json = false, raw = false;
  };
  auto args = std::make_shared<Args>();
  auto* show = queue.add_subcommand("show", "show one message: envelope, recipients, headers");
  show->add_option("id", args->id, "queue ID")->required();
  auto* json_flag = show->add_flag("--json", args->json, "print JSON");
  show->add_flag("--raw", args->raw, "print the stored message exactly as it will be sent")
      ->excludes(json_flag);
  commands.push_back({show, [args, &config_path] {
                        const auto format = args->raw    ? tools::ShowFormat::kRaw
                                            : args->json ? tools::ShowFormat::kJson
                                                         : tools::ShowFormat::kText;
                        return WithConfig(config_path, [&](const config::Config& cfg) {
                          return tools::RunQueueShow(cfg, args->id, format, std::cout, std::cerr);
                        });
                      }});
}

// The operator's controls: queue IDs and/or filters.
void DeclareQueueActions(CLI::App& queue, const std::string& config_path, Commands& commands) {
  for (auto [name, action, help] :
       {std::tuple{"flush", tools::AdminAction::kFlush, "retry queued and deferred mail now"},
        std::tuple{"hold", tools::AdminAction::kHold, "keep mail in the queue, do not deliver"},
        std::tuple{"release", tools::AdminAction::kRelease, "release held mail, deliver now"},
        std::tuple{"delete", tools::AdminAction::kDelete, "remove messages, without notice"},
        std::tuple{"bounce", tools::AdminAction::kBounce, "return mail to its sender now"}}) {
    struct Args {
      tools::QueueFilters filters;
      tools::AdminRequest req;
    };
    auto args = std::make_shared<Args>();
    args->req.action = action;
    auto* cmd = queue.add_subcommand(name, help);
    tools::QueueFilters& f = args->filters;
    cmd->add_option("ids", f.ids, "queue IDs");
    cmd->add_option("--domain", f.domain, "recipient domain");
    cmd->add_option("--sender", f.sender, "envelope sender (<> for the null sender)");
    cmd->add_option("--state", f.state, "recipient state: queued, deferred, held, ...");
    cmd->add_option("--older-than", f.older_than, "arrived longer ago than (5m, 2h, 3d)");
    cmd->add_flag("--all", args->req.all, "every message (when no ID or filter is given)");
    cmd->add_flag("--json", args->req.json, "print JSON");
    commands.push_back(
        {cmd, [args, &config_path] {
           return WithConfig(config_path, [&](const config::Config& cfg) {
             if (int bad = tools::ReadFilters(args->filters, args->req.selection, std::cerr)) {
               return bad;
             }
             relay::SetUpLogging("danerelay/postsuper", cfg.log);
             return tools::RunAdmin(cfg, args->req, std::cout, std::cerr);
           });
         }});
  }
}

void DeclareQueueSuspend(CLI::App& queue, const std::string& config_path, Commands& commands) {
  // Exactly one of --domain and --site: RunSuspend and RunResume say so when it is not.
  constexpr const char* kSiteHelp =
      "site, as queue stats and queue show name it: google, mx1.example.net,mx2.example.net, "
      "\"route [192.0.2.1]:25\"";
  auto req = std::make_shared<tools::SuspendRequest>();
  auto* suspend =
      queue.add_subcommand("suspend", "stop delivery to a domain or a site for a while");
  suspend->add_option("--domain", req->target.domain, "recipient domain");
  suspend->add_option("--site", req->target.site, kSiteHelp);
  suspend->add_option("--for", req->duration, "how long (30m, 2h, 1d)")->required();
  suspend->add_option("--reason", req->reason, "shown by queue stats and logged");
  commands.push_back({suspend, [req, &config_path] {
                        return WithConfig(config_path, [&](const config::Config& cfg) {
                          return tools::RunSuspend(cfg, *req, std::cout, std::cerr);
                        });
                      }});
  auto target = std::make_shared<tools::SuspendTarget>();
  auto* resume = queue.add_subcommand("resume", "end a suspension: its mail is due now");
  resume->add_option("--domain", target->domain, "recipient domain");
  resume->add_option("--site", target->site, kSiteHelp);
  commands.push_back({resume, [target, &config_path] {
                        return WithConfig(config_path, [&](const config::Config& cfg) {
                          return tools::RunResume(cfg, *target, std::cout, std::cerr);
                        });
                      }});
}

CLI::App* DeclareQueue(CLI::App& app, const std::string& config_path, Commands& commands) {
  auto* queue = app.add_subcommand("queue", "inspect the mail queue");
  queue->require_subcommand(1);
  DeclareQueueList(*queue, config_path, commands);
  DeclareQueueShow(*queue, config_path, commands);
  DeclareQueueActions(*queue, config_path, commands);
  auto stats_json = std::make_shared<bool>(false);
  auto* stats = queue->add_subcommand("stats", "counts by state, oldest message, destinations");
  stats->add_flag("--json", *stats_json, "print JSON");
  commands.push_back({stats, [stats_json, &config_path] {
                        return WithConfig(config_path, [&](const config::Config& cfg) {
                          return tools::RunStats(cfg, *stats_json, std::cout, std::cerr);
                        });
                      }});
  DeclareQueueSuspend(*queue, config_path, commands);
  auto* compact = queue->add_subcommand(
      "compact", "give the queue file's free space back (VACUUM; with danerelayd stopped)");
  commands.push_back({compact, [&config_path] {
                        return WithConfig(config_path, [&](const config::Config& cfg) {
                          return tools::RunCompact(cfg, std::cout, std::cerr);
                        });
                      }});
  auto backup_file = std::make_shared<std::string>();
  auto* backup = queue->add_subcommand(
      "backup", "copy the queue into a new file, consistently, while danerelayd runs");
  backup->add_option("file", *backup_file, "the backup file to make (never overwritten)")
      ->required();
  commands.push_back({backup, [backup_file, &config_path] {
                        return WithConfig(config_path, [&](const config::Config& cfg) {
                          return tools::RunBackup(cfg, *backup_file, std::cout, std::cerr);
                        });
                      }});
  return queue;
}

CLI::App* DeclareConfig(CLI::App& app, const std::string& config_path, Commands& commands) {
  auto file = std::make_shared<std::string>();
  auto* config_cmd = app.add_subcommand("config", "configuration");
  config_cmd->require_subcommand(1);
  auto* check = config_cmd->add_subcommand("check", "validate a configuration file");
  check->add_option("file", *file, "TOML file (default: --config)");
  commands.push_back({check, [file, &config_path] {
                        return tools::RunConfigCheck(file->empty() ? config_path : *file, std::cout,
                                                     std::cerr);
                      }});
  return config_cmd;
}

void DeclarePasswd(CLI::App& app, const std::string& config_path, Commands& commands) {
  auto user = std::make_shared<std::string>();
  auto* passwd = app.add_subcommand(
      "passwd", "set an SMTP AUTH password in [auth] users_file (read from standard input)");
  passwd->add_option("user", *user, "account name")->required();
  commands.push_back({passwd, [user, &config_path] {
                        return WithConfig(config_path, [&](const config::Config& cfg) {
                          return tools::RunPasswd(cfg, *user, std::cin, std::cout, std::cerr);
                        });
                      }});
}

void DeclareDaneCheck(CLI::App& app, const std::string& config_path, Commands& commands) {
  struct Args {
    std::string domain;
    bool mandatory = false, json = false;
  };
  auto args = std::make_shared<Args>();
  auto* check = app.add_subcommand(
      "dane-check", "what delivery to DOMAIN would do: DNSSEC, TLSA, STARTTLS, certificates");
  check->add_option("domain", args->domain, "recipient domain")->required();
  check->add_flag("--mandatory", args->mandatory, "judge under mandatory DANE");
  check->add_flag("--json", args->json, "print JSON");
  commands.push_back({check, [args, &config_path] {
                        if (!tools::IsDomainArgument(args->domain, std::cerr)) return kExitUsage;
                        // The report is the output; the delivery code's own log lines would
                        // only repeat it.
                        spdlog::set_default_logger(spdlog::stderr_color_mt("danerelay"));
                        spdlog::set_level(spdlog::level::warn);
                        return WithConfig(config_path, [&](const config::Config& cfg) {
                          return tools::RunDaneCheck(cfg, args->domain, args->mandatory, args->json,
                                                     std::cout);
                        });
                      }});
}

CLI::App* DeclareDkim(CLI::App& app, const std::string& config_path, Commands& commands) {
  auto* dkim = app.add_subcommand("dkim", "DKIM keys: make one, check the published records");
  dkim->require_subcommand(1);
  auto keygen_args = std::make_shared<tools::DkimKeygenArgs>();
  auto* keygen = dkim->add_subcommand("keygen", "write a new key and print its TXT record");
  keygen->add_option("domain", keygen_args->domain, "the signing domain (d=)")->required();
  keygen->add_option("--selector", keygen_args->selector, "s= (default: dr and YYYYMM)");
  keygen->add_option("--algorithm", keygen_args->algorithm, "rsa2048 (default), rsa3072, ed25519")
      ->check(CLI::IsMember({"rsa2048", "rsa3072", "ed25519"}));
  keygen->add_option("--key-file", keygen_args->key_file,
                     "where to write it (default: dkim/DOMAIN.SELECTOR.pem beside the config)");
  // The configuration may already name the key file keygen is about to write: its keys are
  // not loaded here.
  commands.push_back({keygen, [keygen_args, &config_path] {
                        auto cfg = LoadConfig(config_path, /*dkim_keys=*/false);
                        if (!cfg) return kExitConfig;
                        return tools::RunDkimKeygen(*cfg, *keygen_args, std::cout, std::cerr);
                      }});
  struct CheckArgs {
    std::string domain, selector;
  };
  auto check_args = std::make_shared<CheckArgs>();
  auto* check = dkim->add_subcommand(
      "check", "compare the TXT records in DNS with the configured keys of DOMAIN");
  check->add_option("domain", check_args->domain, "the signing domain (d=)")->required();
  check->add_option("--selector", check_args->selector, "only this selector");
  commands.push_back({check, [check_args, &config_path] {
                        spdlog::set_default_logger(spdlog::stderr_color_mt("danerelay"));
                        spdlog::set_level(spdlog::level::warn);
                        return WithConfig(config_path, [&](const config::Config& cfg) {
                          return tools::RunDkimCheck(cfg, check_args->domain, check_args->selector,
                                                     std::cout);
                        });
                      }});
  return dkim;
}

CLI::App* DeclareTlsRpt(CLI::App& app, const std::string& config_path, Commands& commands) {
  struct Args {
    std::string domain, date, list_date;
  };
  auto args = std::make_shared<Args>();
  auto* rpt = app.add_subcommand("tls-rpt", "TLS reporting (RFC 8460)");
  rpt->require_subcommand(1);
  auto* preview = rpt->add_subcommand(
      "preview", "print the TLS-RPT report for DOMAIN for one UTC day; nothing is sent");
  preview->add_option("domain", args->domain, "policy (recipient) domain")->required();
  preview->add_option("--date", args->date, "the UTC day, YYYY-MM-DD (default: today)");
  auto* list = rpt->add_subcommand(
      "list", "the reports the daemon made for one UTC day: where they went, what became of them");
  list->add_option("--date", args->list_date, "the UTC day, YYYY-MM-DD (default: yesterday)");
  commands.push_back({preview, [args, &config_path] {
                        return WithConfig(config_path, [&](const config::Config& cfg) {
                          return tools::RunTlsRptPreview(cfg, args->domain, args->date, std::cout,
                                                         std::cerr);
                        });
                      }});
  commands.push_back({list, [args, &config_path] {
                        return WithConfig(config_path, [&](const config::Config& cfg) {
                          return tools::RunTlsRptList(cfg, args->list_date, std::cout, std::cerr);
                        });
                      }});
  return rpt;
}

// Parses the command line; nullopt when a command is to run, else the exit status after
// saying what is wrong (or printing --help, --version). `groups` are the commands that take a
// command (queue, config, tls-rpt).
std::optional<int> Parse(CLI::App& app, const std::vector<CLI::App*>& groups, int argc,
                         char** argv) {
  // A word where a command belongs: say which word, and which commands there are.
  app.allow_extras();
  for (CLI::App* level : groups) level->allow_extras();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    std::vector<CLI::App*> levels = groups;
    levels.push_back(&app);
    for (CLI::App* level : levels) {
      if ((level != &app && !level->parsed()) || level->remaining().empty()) continue;
      std::vector<std::string> names;
      for (const CLI::App* sub : level->get_subcommands({})) names.push_back(sub->get_name());
      std::cerr << fmt::format("danerelay: unknown command '{}{}'; the commands are: {}\n",
                               level == &app ? "" : level->get_name() + " ",
                               level->remaining().front(), fmt::join(names, ", "));
      return kExitUsage;
    }
    // CLI11's own codes (106, 109, ...) are in no manual: a command line that cannot be used is
    // EX_USAGE, as danerelay(8) says; --help and --version stay 0.
    return app.exit(e) == 0 ? 0 : kExitUsage;
  }
  std::vector<CLI::App*> levels = {&app};
  levels.insert(levels.end(), groups.begin(), groups.end());
  for (CLI::App* level : levels) {
    if ((level == &app || level->parsed()) && !level->remaining().empty()) {
      std::cerr << "danerelay: unexpected argument '" << level->remaining().front() << "'\n";
      return kExitUsage;
    }
  }
  return std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"danerelay: inspect and manage the danerelay queue, check DANE"};
  app.require_subcommand(1);
  std::string config_path;
  app.add_option("-c,--config", config_path,
                 "TOML configuration file (default: " + config::DefaultConfigFile().string() +
                     " when it exists, else the built-in defaults)");
  app.set_version_flag("--version", "danerelay " DANERELAY_VERSION);

  Commands commands;
  CLI::App* queue = DeclareQueue(app, config_path, commands);
  CLI::App* config = DeclareConfig(app, config_path, commands);
  DeclarePasswd(app, config_path, commands);
  DeclareDaneCheck(app, config_path, commands);
  CLI::App* tls_rpt = DeclareTlsRpt(app, config_path, commands);
  CLI::App* dkim = DeclareDkim(app, config_path, commands);

  if (auto status = Parse(app, {queue, config, tls_rpt, dkim}, argc, argv)) return *status;
  for (const Command& command : commands) {
    if (command.app->parsed()) return command.run();
  }
  return 0;
}
