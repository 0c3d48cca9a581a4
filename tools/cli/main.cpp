// danerelay: the operator's command line. Reads the same configuration as the daemon; inspects
// the queue read-only and changes it in single transactions, safe while danerelayd runs. It
// never creates or migrates the queue (the daemon does).
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <iostream>
#include <vector>

#include "config/config.hpp"
#include "queue/store.hpp"
#include "relay/daemon/logging.hpp"
#include "tools/cli/config_check.hpp"
#include "tools/cli/dane_check.hpp"
#include "tools/cli/passwd.hpp"
#include "tools/cli/queue_admin.hpp"
#include "tools/cli/queue_filters.hpp"
#include "tools/cli/queue_list.hpp"
#include "tools/cli/queue_show.hpp"
#include "tools/cli/tls_rpt.hpp"

namespace {

using namespace danerelay;
constexpr int kExitConfig = 78;
constexpr int kExitUsage = 64;  // EX_USAGE

// The configuration, or nullopt after saying why on stderr.
std::optional<config::Config> LoadConfig(const std::string& path) {
  auto cfg = config::LoadFileOrDefaults(path);
  if (!cfg) {
    std::cerr << "danerelay: " << cfg.error().message << "\n";
    return std::nullopt;
  }
  return std::move(*cfg);
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

  auto* queue_cmd = app.add_subcommand("queue", "inspect the mail queue");
  queue_cmd->require_subcommand(1);

  bool list_json = false, list_all = false;
  auto* list = queue_cmd->add_subcommand("list", "list queued messages, like mailq");
  list->add_flag("--json", list_json, "one JSON object per message per line");
  list->add_flag("--all", list_all, "include completed messages (all recipients final)");
  std::string list_domain;
  list->add_option("--domain", list_domain, "only messages with a recipient in this domain");
  // The same filters as the actions take, plus --recipient.
  std::vector<std::string> list_ids;
  std::string list_sender, list_state, list_older, list_recipient;
  list->add_option("ids", list_ids, "queue IDs (default: all)");
  auto* sender_opt =
      list->add_option("--sender", list_sender, "envelope sender (<> for the null sender)");
  list->add_option("--state", list_state, "only recipients in this state");
  list->add_option("--older-than", list_older, "arrived longer ago than (5m, 2h, 3d)");
  list->add_option("--recipient", list_recipient, "only this recipient address");

  std::string show_id;
  bool show_json = false, show_raw = false;
  auto* show = queue_cmd->add_subcommand("show", "show one message: envelope, recipients, headers");
  show->add_option("id", show_id, "queue ID")->required();
  auto* json_flag = show->add_flag("--json", show_json, "print JSON");
  show->add_flag("--raw", show_raw, "print the stored message exactly as it will be sent")
      ->excludes(json_flag);

  // The operator's controls: queue IDs and/or filters.
  struct AdminCommand {
    tools::AdminAction action;
    CLI::App* app;
    std::vector<std::string> ids;
    std::string domain, sender, state, older_than;
    bool all = false, json = false;
  };
  std::vector<std::unique_ptr<AdminCommand>> admin;
  for (auto [name, action, help] :
       {std::tuple{"flush", tools::AdminAction::kFlush, "retry queued and deferred mail now"},
        std::tuple{"hold", tools::AdminAction::kHold, "keep mail in the queue, do not deliver"},
        std::tuple{"release", tools::AdminAction::kRelease, "release held mail, deliver now"},
        std::tuple{"delete", tools::AdminAction::kDelete, "remove messages, without notice"},
        std::tuple{"bounce", tools::AdminAction::kBounce, "return mail to its sender now"}}) {
    auto cmd = std::make_unique<AdminCommand>();
    cmd->action = action;
    cmd->app = queue_cmd->add_subcommand(name, help);
    cmd->app->add_option("ids", cmd->ids, "queue IDs");
    cmd->app->add_option("--domain", cmd->domain, "recipient domain");
    cmd->app->add_option("--sender", cmd->sender, "envelope sender (<> for the null sender)");
    cmd->app->add_option("--state", cmd->state, "recipient state: queued, deferred, held, ...");
    cmd->app->add_option("--older-than", cmd->older_than, "arrived longer ago than (5m, 2h, 3d)");
    cmd->app->add_flag("--all", cmd->all, "every message (when no ID or filter is given)");
    cmd->app->add_flag("--json", cmd->json, "print JSON");
    admin.push_back(std::move(cmd));
  }
  bool stats_json = false;
  auto* stats = queue_cmd->add_subcommand("stats", "counts by state, oldest message, destinations");
  stats->add_flag("--json", stats_json, "print JSON");
  auto* compact = queue_cmd->add_subcommand(
      "compact", "give the queue file's free space back (VACUUM; with danerelayd stopped)");

  std::string check_file;
  auto* config_cmd = app.add_subcommand("config", "configuration");
  config_cmd->require_subcommand(1);
  auto* config_check = config_cmd->add_subcommand("check", "validate a configuration file");
  config_check->add_option("file", check_file, "TOML file (default: --config)");

  std::string passwd_user;
  auto* passwd = app.add_subcommand(
      "passwd", "set an SMTP AUTH password in [auth] users_file (read from standard input)");
  passwd->add_option("user", passwd_user, "account name")->required();

  std::string check_domain;
  bool check_mandatory = false, check_json = false;
  auto* check = app.add_subcommand(
      "dane-check", "what delivery to DOMAIN would do: DNSSEC, TLSA, STARTTLS, certificates");
  check->add_option("domain", check_domain, "recipient domain")->required();
  check->add_flag("--mandatory", check_mandatory, "judge under mandatory DANE");
  check->add_flag("--json", check_json, "print JSON");

  std::string rpt_domain, rpt_date;
  auto* rpt_cmd = app.add_subcommand("tls-rpt", "TLS reporting (RFC 8460)");
  rpt_cmd->require_subcommand(1);
  auto* rpt_preview = rpt_cmd->add_subcommand(
      "preview", "print the TLS-RPT report for DOMAIN for one UTC day; nothing is sent");
  rpt_preview->add_option("domain", rpt_domain, "policy (recipient) domain")->required();
  rpt_preview->add_option("--date", rpt_date, "the UTC day, YYYY-MM-DD (default: today)");
  std::string rpt_list_date;
  auto* rpt_list = rpt_cmd->add_subcommand(
      "list", "the reports the daemon made for one UTC day: where they went, what became of them");
  rpt_list->add_option("--date", rpt_list_date, "the UTC day, YYYY-MM-DD (default: yesterday)");

  // A word where a command belongs: say which word, and which commands there are.
  for (CLI::App* level : {&app, queue_cmd, config_cmd, rpt_cmd}) level->allow_extras();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    for (CLI::App* level : {queue_cmd, config_cmd, rpt_cmd, &app}) {
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
  for (CLI::App* level : {&app, queue_cmd, config_cmd, rpt_cmd}) {
    if ((level == &app || level->parsed()) && !level->remaining().empty()) {
      std::cerr << "danerelay: unexpected argument '" << level->remaining().front() << "'\n";
      return kExitUsage;
    }
  }

  if (passwd->parsed()) {
    auto cfg = LoadConfig(config_path);
    if (!cfg) return kExitConfig;
    return tools::RunPasswd(*cfg, passwd_user, std::cin, std::cout, std::cerr);
  }
  if (config_check->parsed()) {
    return tools::RunConfigCheck(check_file.empty() ? config_path : check_file, std::cout,
                                 std::cerr);
  }
  for (const auto& cmd : admin) {
    if (!cmd->app->parsed()) continue;
    auto cfg = LoadConfig(config_path);
    if (!cfg) return kExitConfig;
    tools::AdminRequest req;
    req.action = cmd->action;
    if (int bad =
            tools::ReadFilters({cmd->ids, cmd->domain, cmd->sender, cmd->state, cmd->older_than},
                               req.selection, std::cerr)) {
      return bad;
    }
    req.all = cmd->all;
    req.json = cmd->json;
    relay::SetUpLogging("danerelay/postsuper", cfg->log);
    return tools::RunAdmin(*cfg, req, std::cout, std::cerr);
  }
  if (stats->parsed()) {
    auto cfg = LoadConfig(config_path);
    if (!cfg) return kExitConfig;
    return tools::RunStats(*cfg, stats_json, std::cout, std::cerr);
  }
  if (compact->parsed()) {
    auto cfg = LoadConfig(config_path);
    if (!cfg) return kExitConfig;
    return tools::RunCompact(*cfg, std::cout, std::cerr);
  }
  if (rpt_preview->parsed()) {
    auto cfg = LoadConfig(config_path);
    if (!cfg) return kExitConfig;
    return tools::RunTlsRptPreview(*cfg, rpt_domain, rpt_date, std::cout, std::cerr);
  }
  if (rpt_list->parsed()) {
    auto cfg = LoadConfig(config_path);
    if (!cfg) return kExitConfig;
    return tools::RunTlsRptList(*cfg, rpt_list_date, std::cout, std::cerr);
  }
  if (check->parsed()) {
    // An address is not a domain: "user@example.net" would be looked up as a name that does
    // not exist and reported as such.
    if (check_domain.find('@') != std::string::npos) {
      std::cerr << "danerelay: dane-check takes a domain, not an address: '" << check_domain
                << "'; try 'danerelay dane-check "
                << check_domain.substr(check_domain.rfind('@') + 1) << "'\n";
      return kExitUsage;
    }
    // The report is the output; the delivery code's own log lines would only repeat it.
    spdlog::set_default_logger(spdlog::stderr_color_mt("danerelay"));
    spdlog::set_level(spdlog::level::warn);
    auto cfg = LoadConfig(config_path);
    if (!cfg) return kExitConfig;
    return tools::RunDaneCheck(*cfg, check_domain, check_mandatory, check_json, std::cout);
  }

  if (list->parsed()) {
    tools::ListRequest req;
    if (int bad = tools::ReadFilters({list_ids, list_domain, list_sender, list_state, list_older},
                                     req.selection, std::cerr)) {
      return bad;
    }
    req.sender_given = sender_opt->count() > 0;
    req.recipient = list_recipient;
    req.all = list_all;
    req.json = list_json;
    auto cfg = LoadConfig(config_path);
    if (!cfg) return kExitConfig;
    return tools::RunQueueList(*cfg, req, std::cout, std::cerr);
  }
  if (show->parsed()) {
    auto cfg = LoadConfig(config_path);
    if (!cfg) return kExitConfig;
    const auto format = show_raw    ? tools::ShowFormat::kRaw
                        : show_json ? tools::ShowFormat::kJson
                                    : tools::ShowFormat::kText;
    return tools::RunQueueShow(*cfg, show_id, format, std::cout, std::cerr);
  }
  return 0;
}
