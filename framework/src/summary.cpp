#include "userflux/summary.h"

#include <cmath>

namespace Userflux {

using nlohmann::json;

QString rfc3339(const QDateTime &t)
{
    return t.toUTC().toString(QStringLiteral("yyyy-MM-ddTHH:mm:ss.zzzZ"));
}

namespace {

double round3(double v)
{
    return std::isfinite(v) ? std::round(v * 1000.0) / 1000.0 : 0.0;
}

double rate(qint64 n, double seconds)
{
    return seconds > 0 ? round3(double(n) / seconds) : 0.0;
}

double errorRate(qint64 errors, qint64 ok)
{
    const qint64 finished = errors + ok;
    return finished > 0 ? std::round(double(errors) / double(finished) * 1e6) / 1e6 : 0.0;
}

const char *kAllKinds[] = {"http_status", "timeout", "connect_refused", "connect_timeout", "reset",
                           "tls",         "dns",     "protocol",        "other"};

} // namespace

json buildSummary(const SummaryInput &in)
{
    const RunStats &t = *in.totals;
    json s;
    s["schema"] = SummarySchemaId;
    s["run_id"] = in.runId.toStdString();
    s["final"] = in.final;
    s["generated_at"] = rfc3339(QDateTime::currentDateTimeUtc()).toStdString();
    s["tool"] = {{"name", "userflux"}, {"version", USERFLUX_VERSION}};
    s["run"] = {{"state", in.state.toStdString()},
                {"started_at", rfc3339(in.startedAt).toStdString()},
                {"ended_at", in.endedAt.isValid() ? json(rfc3339(in.endedAt).toStdString()) : json(nullptr)},
                {"duration_s", round3(in.durationS)},
                {"config_name", in.configName.toStdString()},
                {"model", in.model.toStdString()}};
    s["totals"] = {{"requests", t.requests},
                   {"ok", t.ok},
                   {"errors", t.errors},
                   {"interrupted", t.interrupted},
                   {"error_rate", errorRate(t.errors, t.ok)},
                   {"throughput_rps", rate(t.ok + t.errors, in.durationS)},
                   {"iterations", t.iterations},
                   {"dropped_iterations", t.droppedIterations},
                   {"bytes_received", t.bytesReceived},
                   {"bytes_sent", t.bytesSent},
                   {"vus_max", in.vusMax},
                   {"retries", in.retries}};
    // An empty run has no latency block (never NaN, never null where a number is due).
    if (t.latency.count() > 0)
        s["latency_ms"] = latencyBlock(t.latency);
    if (t.latencyOk.count() > 0)
        s["latency_ok_ms"] = latencyBlock(t.latencyOk);
    if (t.latencyCorrected && t.latencyCorrected->count() > 0)
        s["latency_corrected_ms"] = latencyBlock(*t.latencyCorrected);

    json codes = json::object();
    for (const auto &[code, n] : t.statusCodes)
        codes[std::to_string(code)] = n;
    s["status_codes"] = codes;
    json kinds = json::object();
    for (const char *k : kAllKinds)
        kinds[k] = 0;
    for (const auto &[k, n] : t.errorsByKind)
        kinds[k.toStdString()] = n;
    s["errors_by_kind"] = kinds;

    json checks = json::array();
    for (const auto &[key, c] : t.checks)
        checks.push_back({{"name", key.second.toStdString()}, {"step", key.first.toStdString()},
                          {"passes", c.passes}, {"fails", c.fails}});
    s["checks"] = checks;

    // Endpoints: declared order first (so one that saw no request still shows), then any other name seen.
    QStringList order = in.endpointOrder;
    for (const auto &[name, e] : t.endpoints)
        if (!order.contains(name))
            order << name;
    json endpoints = json::array();
    for (const QString &name : std::as_const(order)) {
        auto it = t.endpoints.find(name);
        json e = {{"name", name.toStdString()}, {"method", ""}, {"requests", 0}, {"ok", 0}, {"errors", 0},
                  {"interrupted", 0}, {"error_rate", 0.0}, {"throughput_rps", 0.0}};
        if (it != t.endpoints.end()) {
            const EndpointStats &ep = it->second;
            e["method"] = ep.method.toStdString();
            e["requests"] = ep.requests;
            e["ok"] = ep.ok;
            e["errors"] = ep.errors;
            e["interrupted"] = ep.interrupted;
            e["error_rate"] = errorRate(ep.errors, ep.ok);
            e["throughput_rps"] = rate(ep.ok + ep.errors, in.durationS);
            if (ep.latency && ep.latency->count() > 0)
                e["latency_ms"] = latencyBlock(*ep.latency);
        }
        endpoints.push_back(e);
    }
    s["endpoints"] = endpoints;

    json serverTiming = json::array();
    for (const auto &[name, h] : t.serverTiming)
        serverTiming.push_back({{"service", name.toStdString()}, {"count", h->count()}, {"latency_ms", latencyBlock(*h)}});
    s["server_timing"] = serverTiming;

    json protocols = json::object();
    for (const auto &[p, n] : t.protocols)
        protocols[p.toStdString()] = n;
    s["protocols"] = protocols;
    s["histogram"] = t.latency.toJson();

    if (in.final) {
        s["timeseries"] = in.timeseries;
        json results = json::array();
        if (in.thresholds) {
            for (const Threshold &th : *in.thresholds) {
                const ThresholdResult r = evaluateThreshold(th, s);
                results.push_back({{"metric", th.metric.toStdString()},
                                   {"expr", th.expr.toStdString()},
                                   {"ok", r.ok},
                                   {"observed", r.observed ? json(round3(*r.observed)) : json(nullptr)}});
            }
        }
        s["thresholds"] = results;
    }
    return s;
}

bool thresholdsPassed(const json &summary)
{
    for (const auto &t : summary.value("thresholds", json::array()))
        if (!t.value("ok", false))
            return false;
    return true;
}

} // namespace Userflux
