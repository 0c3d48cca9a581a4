#include "tools/cli/queue_view.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <ctime>

namespace danerelay::tools {
namespace {

std::string Iso8601(queue::TimePoint t) {
  const auto us =
      std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(us / 1'000'000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, us % 1'000'000);
}

// mailq's arrival column: "Sun Nov 22 08:48:21" (UTC).
std::string MailqTime(queue::TimePoint t) {
  const std::time_t secs = queue::Clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%a %b %d %H:%M:%S", &tm);
  return buf;
}

nlohmann::json ToJson(const queue::MessageInfo& m) {
  nlohmann::json rcpts = nlohmann::json::array();
  for (const auto& r : m.recipients) {
    nlohmann::json j = {
        {"address", r.address},       {"state", std::string(queue::ToString(r.state))},
        {"attempts", r.attempts},     {"notify", queue::NotifyToString(r.notify)},
        {"orcpt", r.orcpt},           {"last_status", r.last_status},
        {"last_reply", r.last_reply}, {"last_cause", std::string(queue::Token(r.last_cause))},
    };
    j["next_attempt"] = r.next_attempt ? nlohmann::json(Iso8601(*r.next_attempt)) : nullptr;
    j["site"] = r.site;  // "": not yet known
    rcpts.push_back(std::move(j));
  }
  return {
      {"id", m.id},
      {"arrival", Iso8601(m.arrival)},
      {"sender", m.sender},
      {"size", m.size},
      {"client_address", m.client_address},
      {"client_helo", m.client_helo},
      {"protocol", m.protocol},
      {"auth_user", m.auth_user},
      {"mail_auth", m.mail_auth ? nlohmann::json(*m.mail_auth) : nlohmann::json(nullptr)},
      {"body", m.body_8bitmime ? "8BITMIME" : "7BIT"},
      {"smtputf8", m.smtputf8},
      {"requiretls", m.requiretls},
      {"tls_report", m.tls_report},
      {"dsn_ret", std::string(queue::ToString(m.dsn_ret))},
      {"dsn_envid", m.dsn_envid},
      {"recipients", std::move(rcpts)},
  };
}

}  // namespace

std::vector<std::pair<std::string, std::string>> ParseHeaders(const std::string& content) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t pos = 0;
  while (pos < content.size()) {
    size_t eol = content.find("\r\n", pos);
    if (eol == std::string::npos) eol = content.size();
    const std::string_view line(content.data() + pos, eol - pos);
    pos = eol + 2;
    if (line.empty()) break;  // end of the header section
    if ((line.front() == ' ' || line.front() == '\t') && !out.empty()) {
      out.back().second += " " + std::string(line.substr(line.find_first_not_of(" \t")));
      continue;
    }
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) break;  // not a header: the body started without a blank
    std::string value(line.substr(colon + 1));
    value.erase(0, value.find_first_not_of(" \t"));
    out.emplace_back(std::string(line.substr(0, colon)), std::move(value));
  }
  return out;
}

void PrintQueueTable(std::ostream& out, const std::vector<queue::MessageInfo>& messages) {
  if (messages.empty()) {
    out << "Mail queue is empty\n";
    return;
  }
  out << fmt::format("{:<15} {:>8} {:<20} {}\n", "-Queue ID-", "--Size--", "-Arrival Time (UTC)-",
                     "-Sender/Recipient-------");
  std::int64_t total = 0;
  for (const auto& m : messages) {
    total += m.size;
    out << fmt::format("{:<15} {:>8} {:<20} {}\n", m.id, m.size, MailqTime(m.arrival),
                       m.sender.empty() ? "MAILER-DAEMON" : m.sender);
    // Like mailq: each reason once, then the recipients it applies to, each with its state,
    // attempts and next retry.
    std::vector<std::pair<std::string, std::vector<const queue::StoredRecipient*>>> by_reason;
    for (const auto& r : m.recipients) {
      const std::string reason = r.last_reply.empty()
                                     ? ""
                                     : fmt::format("({}{}{})", r.last_status,
                                                   r.last_status.empty() ? "" : " ", r.last_reply);
      auto it = std::find_if(by_reason.begin(), by_reason.end(),
                             [&](const auto& g) { return g.first == reason; });
      if (it == by_reason.end()) it = by_reason.insert(by_reason.end(), {reason, {}});
      it->second.push_back(&r);
    }
    for (const auto& [reason, rcpts] : by_reason) {
      if (!reason.empty()) out << fmt::format("{:46}{}\n", "", reason);
      for (const auto* r : rcpts) {
        std::string extra;
        if (r->attempts > 0)
          extra += fmt::format(", {} attempt{}", r->attempts, r->attempts == 1 ? "" : "s");
        if (r->next_attempt && r->state == queue::RecipientState::kDeferred) {
          extra += ", next " + MailqTime(*r->next_attempt) + " UTC";
        }
        out << fmt::format("{:46}{} [{}{}]\n", "", r->address, queue::ToString(r->state), extra);
      }
    }
    out << "\n";
  }
  out << fmt::format("-- {} Kbytes in {} Request{}.\n", (total + 1023) / 1024, messages.size(),
                     messages.size() == 1 ? "" : "s");
}

void PrintQueueJson(std::ostream& out, const std::vector<queue::MessageInfo>& messages) {
  for (const auto& m : messages) {
    out << ToJson(m).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  }
}

void PrintMessage(std::ostream& out, const queue::MessageInfo& m, const std::string& content,
                  const std::vector<queue::AttemptRecord>& attempts) {
  out << fmt::format("Queue ID:   {}\n", m.id);
  out << fmt::format("Arrival:    {}\n", Iso8601(m.arrival));
  out << fmt::format("Sender:     <{}>\n", m.sender);
  out << fmt::format("Size:       {} octets\n", m.size);
  out << fmt::format("Client:     [{}] helo={} protocol={}\n", m.client_address, m.client_helo,
                     m.protocol);
  if (!m.auth_user.empty()) out << fmt::format("Auth user:  {}\n", m.auth_user);
  // RFC 4954 §5: the AUTH= of MAIL as passed on to the next hop ("<>": given, but not vouched
  // for or empty).
  if (m.mail_auth) {
    out << fmt::format("MAIL AUTH:  AUTH={}\n", m.mail_auth->empty() ? "<>" : *m.mail_auth);
  }
  out << fmt::format("Body:       {}{}{}{}\n", m.body_8bitmime ? "8BITMIME" : "7BIT",
                     m.smtputf8 ? ", SMTPUTF8" : "", m.requiretls ? ", REQUIRETLS" : "",
                     m.tls_report ? ", a TLS-RPT report (RFC 8460 §5.3)" : "");
  out << fmt::format(
      "DSN:        RET={} ENVID={}\n",
      m.dsn_ret == queue::DsnRet::kUnspecified ? "(default)" : queue::ToString(m.dsn_ret),
      m.dsn_envid.empty() ? "(none)" : m.dsn_envid);
  out << "Recipients:\n";
  for (const auto& r : m.recipients) {
    out << fmt::format("  <{}>  state={} attempts={}", r.address, queue::ToString(r.state),
                       r.attempts);
    if (r.next_attempt) out << " next_attempt=" << Iso8601(*r.next_attempt);
    if (r.notify) out << " NOTIFY=" << queue::NotifyToString(r.notify);
    if (!r.orcpt.empty()) out << " ORCPT=" << r.orcpt;
    if (!r.site.empty()) out << " site=" << r.site;
    out << "\n";
    if (!r.last_reply.empty()) out << fmt::format("    last: {} {}\n", r.last_status, r.last_reply);
    if (r.last_cause != queue::Cause::kNone && r.state != queue::RecipientState::kDelivered) {
      out << "    cause: " << queue::Token(r.last_cause) << "\n";
    }
  }
  if (!attempts.empty()) out << "Attempts:\n";
  for (const auto& a : attempts) {
    const std::string rcpt =
        a.recipient_index >= 0 && static_cast<size_t>(a.recipient_index) < m.recipients.size()
            ? m.recipients[static_cast<size_t>(a.recipient_index)].address
            : "?";
    out << fmt::format("  {} <{}> via {}[{}]{}: {} {}\n", Iso8601(a.time), rcpt, a.mx_host,
                       a.ip.empty() ? "-" : a.ip, a.site.empty() ? "" : " site=" + a.site, a.status,
                       a.reply);
    out << fmt::format("      DNSSEC: MX {}, address {}, TLSA {}; TLS: {}{}\n", a.dnssec_mx,
                       a.dnssec_address, a.dnssec_tlsa.empty() ? "not looked up" : a.dnssec_tlsa,
                       a.tls_verdict, a.tlsa_record.empty() ? "" : ", matched " + a.tlsa_record);
    if (!a.mta_sts.empty()) out << "      MTA-STS: " << a.mta_sts << "\n";
    if (!a.note.empty()) out << "      Note: " << a.note << "\n";
    if (!a.result_type.empty()) out << "      TLS-RPT result: " << a.result_type << "\n";
  }
  out << "Headers:\n";
  for (const auto& [name, value] : ParseHeaders(content)) {
    out << fmt::format("  {}: {}\n", name, value);
  }
}

void PrintMessageJson(std::ostream& out, const queue::MessageInfo& m, const std::string& content,
                      const std::vector<queue::AttemptRecord>& attempts) {
  nlohmann::json j = ToJson(m);
  nlohmann::json history = nlohmann::json::array();
  for (const auto& a : attempts) {
    history.push_back({{"recipient_index", a.recipient_index},
                       {"time", Iso8601(a.time)},
                       {"mx_host", a.mx_host},
                       {"ip", a.ip},
                       {"dnssec_mx", a.dnssec_mx},
                       {"dnssec_address", a.dnssec_address},
                       {"dnssec_tlsa", a.dnssec_tlsa},
                       {"tls_verdict", a.tls_verdict},
                       {"tlsa_record", a.tlsa_record},
                       {"reply", a.reply},
                       {"status", a.status},
                       {"note", a.note},
                       {"mta_sts", a.mta_sts},
                       {"sending_ip", a.sending_ip},
                       {"session", a.session},
                       {"policy_type", a.policy_type},
                       {"sts_problem", a.sts_problem},
                       {"result_type", a.result_type},
                       {"site", a.site}});
  }
  j["attempts"] = std::move(history);
  nlohmann::json headers = nlohmann::json::array();
  for (auto& [name, value] : ParseHeaders(content)) {
    // Header bytes are not always UTF-8; replace what JSON cannot carry rather than fail.
    headers.push_back({name, value});
  }
  j["headers"] = std::move(headers);
  out << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
}

}  // namespace danerelay::tools
