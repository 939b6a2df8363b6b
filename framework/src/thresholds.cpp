#include "userflux/thresholds.h"

#include "userflux/duration.h"

#include <QRegularExpression>

#include <cmath>

namespace Userflux {

namespace {

const QStringList kMetrics = {QStringLiteral("latency_ms"), QStringLiteral("error_rate"),
                              QStringLiteral("throughput_rps"), QStringLiteral("checks"),
                              QStringLiteral("server_timing_ms"), QStringLiteral("requests")};

bool isLatencyMetric(const QString &m)
{
    return m == QLatin1String("latency_ms") || m == QLatin1String("server_timing_ms");
}

// Latency stats a threshold may name, mapped to the summary's latency block keys.
std::optional<QString> latencyKey(const QString &stat)
{
    static const QHash<QString, QString> aliases = {
        {QStringLiteral("min"), QStringLiteral("min")},       {QStringLiteral("max"), QStringLiteral("max")},
        {QStringLiteral("mean"), QStringLiteral("mean")},     {QStringLiteral("avg"), QStringLiteral("mean")},
        {QStringLiteral("med"), QStringLiteral("p50")},       {QStringLiteral("stdev"), QStringLiteral("stdev")},
        {QStringLiteral("p50"), QStringLiteral("p50")},       {QStringLiteral("p75"), QStringLiteral("p75")},
        {QStringLiteral("p90"), QStringLiteral("p90")},       {QStringLiteral("p95"), QStringLiteral("p95")},
        {QStringLiteral("p99"), QStringLiteral("p99")},       {QStringLiteral("p99.9"), QStringLiteral("p99_9")},
        {QStringLiteral("p99_9"), QStringLiteral("p99_9")},   {QStringLiteral("count"), QStringLiteral("count")},
    };
    auto it = aliases.constFind(stat);
    if (it == aliases.constEnd())
        return std::nullopt;
    return *it;
}

bool compare(double observed, const QString &op, double bound)
{
    if (op == QLatin1String("<"))
        return observed < bound;
    if (op == QLatin1String("<="))
        return observed <= bound;
    if (op == QLatin1String(">"))
        return observed > bound;
    if (op == QLatin1String(">="))
        return observed >= bound;
    if (op == QLatin1String("=="))
        return observed == bound;
    return observed != bound;
}

std::optional<double> number(const nlohmann::json &obj, const char *key)
{
    if (!obj.is_object() || !obj.contains(key) || !obj[key].is_number())
        return std::nullopt;
    return obj[key].get<double>();
}

} // namespace

std::vector<Threshold> parseThresholds(const nlohmann::json &thresholds, ConfigErrors *errors)
{
    std::vector<Threshold> out;
    if (!thresholds.is_object()) {
        errors->append({QStringLiteral("thresholds"), QStringLiteral("must be an object of metric: [expressions]")});
        return out;
    }
    static const QRegularExpression keyRe(QStringLiteral(R"(^([a-z_]+)(?:\{([a-z_]+)=([^}]+)\})?$)"));
    static const QRegularExpression exprRe(
        QStringLiteral(R"(^\s*([a-z][a-z0-9_.]*)?\s*(<=|>=|==|!=|<|>)\s*(-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)\s*$)"));
    for (auto it = thresholds.begin(); it != thresholds.end(); ++it) {
        const QString key = QString::fromStdString(it.key());
        const QString path = QStringLiteral("thresholds[\"%1\"]").arg(key);
        const auto km = keyRe.match(key);
        if (!km.hasMatch() || !kMetrics.contains(km.captured(1))) {
            errors->append({path, QStringLiteral("unknown metric; use one of %1, optionally scoped like "
                                                 "latency_ms{endpoint=login} or server_timing_ms{service=orders}")
                                      .arg(kMetrics.join(", "))});
            continue;
        }
        Threshold base;
        base.metric = key;
        base.metricName = km.captured(1);
        base.scopeKey = km.captured(2);
        base.scopeValue = km.captured(3);
        if (!base.scopeKey.isEmpty()) {
            const bool okScope = (base.metricName == QLatin1String("latency_ms") && base.scopeKey == QLatin1String("endpoint"))
                || (base.metricName == QLatin1String("server_timing_ms") && base.scopeKey == QLatin1String("service"))
                || (base.metricName == QLatin1String("error_rate") && base.scopeKey == QLatin1String("endpoint"));
            if (!okScope) {
                errors->append({path, QStringLiteral("scope {%1=...} is not supported for %2").arg(base.scopeKey, base.metricName)});
                continue;
            }
        } else if (base.metricName == QLatin1String("server_timing_ms")) {
            errors->append({path, QStringLiteral("server_timing_ms needs a service: server_timing_ms{service=NAME}")});
            continue;
        }
        if (!it.value().is_array() || it.value().empty()) {
            errors->append({path, QStringLiteral("must be a non-empty list of expressions like \"p95 < 500\"")});
            continue;
        }
        int i = 0;
        for (const auto &entry : it.value()) {
            const QString epath = QStringLiteral("%1[%2]").arg(path).arg(i++);
            Threshold t = base;
            if (entry.is_string()) {
                t.expr = QString::fromStdString(entry.get<std::string>());
            } else if (entry.is_object()) {
                bool bad = false;
                for (auto f = entry.begin(); f != entry.end(); ++f) {
                    if (f.key() != "expr" && f.key() != "abort_on_fail" && f.key() != "delay") {
                        errors->append({epath + QStringLiteral(".") + QString::fromStdString(f.key()),
                                        QStringLiteral("unknown field (expected expr, abort_on_fail, delay)")});
                        bad = true;
                    }
                }
                if (!entry.contains("expr") || !entry["expr"].is_string()) {
                    errors->append({epath + QStringLiteral(".expr"), QStringLiteral("required string, e.g. \"p95 < 500\"")});
                    continue;
                }
                t.expr = QString::fromStdString(entry["expr"].get<std::string>());
                if (entry.contains("abort_on_fail")) {
                    if (!entry["abort_on_fail"].is_boolean())
                        errors->append({epath + QStringLiteral(".abort_on_fail"), QStringLiteral("must be true or false")}), bad = true;
                    else
                        t.abortOnFail = entry["abort_on_fail"].get<bool>();
                }
                if (entry.contains("delay")) {
                    const auto d = entry["delay"].is_string()
                        ? parseDuration(QString::fromStdString(entry["delay"].get<std::string>()))
                        : Result<std::chrono::microseconds>(Error{QStringLiteral("type"), QStringLiteral("must be a duration string like \"10s\"")});
                    if (!d)
                        errors->append({epath + QStringLiteral(".delay"), d.error().message}), bad = true;
                    else
                        t.delay = *d;
                }
                if (bad)
                    continue;
            } else {
                errors->append({epath, QStringLiteral("must be a string like \"p95 < 500\" or an object {\"expr\": ...}")});
                continue;
            }
            const auto em = exprRe.match(t.expr);
            if (!em.hasMatch()) {
                errors->append({epath, QStringLiteral("\"%1\" is not an expression like \"p95 < 500\" or \"< 0.01\"").arg(t.expr)});
                continue;
            }
            t.stat = em.captured(1).isEmpty() ? QStringLiteral("value") : em.captured(1);
            t.op = em.captured(2);
            t.bound = em.captured(3).toDouble();
            bool statOk = true;
            if (isLatencyMetric(t.metricName))
                statOk = latencyKey(t.stat).has_value();
            else if (t.metricName == QLatin1String("checks"))
                statOk = t.stat == QLatin1String("rate") || t.stat == QLatin1String("value");
            else
                statOk = t.stat == QLatin1String("value");
            if (!statOk) {
                errors->append({epath, QStringLiteral("\"%1\" is not a statistic of %2 (use %3)")
                                           .arg(t.stat, t.metricName,
                                                isLatencyMetric(t.metricName)
                                                    ? QStringLiteral("p50, p75, p90, p95, p99, p99.9, min, max, mean, stdev, count")
                                                    : t.metricName == QLatin1String("checks")
                                                        ? QStringLiteral("rate, e.g. \"rate > 0.99\"")
                                                        : QStringLiteral("no statistic, e.g. \"< 0.01\" or \"> 100\""))});
                continue;
            }
            out.push_back(t);
        }
    }
    return out;
}

ThresholdResult evaluateThreshold(const Threshold &t, const nlohmann::json &summary)
{
    std::optional<double> observed;
    const auto totals = summary.value("totals", nlohmann::json::object());
    if (isLatencyMetric(t.metricName)) {
        nlohmann::json block;
        if (t.metricName == QLatin1String("latency_ms") && t.scopeKey.isEmpty()) {
            block = summary.value("latency_ms", nlohmann::json::object());
        } else {
            const char *listKey = t.metricName == QLatin1String("latency_ms") ? "endpoints" : "server_timing";
            const char *nameKey = t.metricName == QLatin1String("latency_ms") ? "name" : "service";
            for (const auto &e : summary.value(listKey, nlohmann::json::array()))
                if (e.value(nameKey, std::string()) == t.scopeValue.toStdString())
                    block = e.value("latency_ms", nlohmann::json::object());
        }
        if (block.is_object() && block.value("count", 0) > 0)
            observed = number(block, latencyKey(t.stat)->toLatin1().constData());
    } else if (t.metricName == QLatin1String("error_rate")) {
        if (t.scopeKey.isEmpty()) {
            if (totals.value("ok", 0) + totals.value("errors", 0) > 0)
                observed = number(totals, "error_rate");
        } else {
            for (const auto &e : summary.value("endpoints", nlohmann::json::array()))
                if (e.value("name", std::string()) == t.scopeValue.toStdString() && e.value("requests", 0) > 0)
                    observed = number(e, "error_rate");
        }
    } else if (t.metricName == QLatin1String("throughput_rps")) {
        observed = number(totals, "throughput_rps");
    } else if (t.metricName == QLatin1String("requests")) {
        observed = number(totals, "requests");
    } else if (t.metricName == QLatin1String("checks")) {
        double passes = 0, fails = 0;
        for (const auto &c : summary.value("checks", nlohmann::json::array())) {
            passes += c.value("passes", 0.0);
            fails += c.value("fails", 0.0);
        }
        if (passes + fails > 0)
            observed = passes / (passes + fails);
    }
    ThresholdResult r;
    r.observed = observed;
    r.ok = observed.has_value() && std::isfinite(*observed) && compare(*observed, t.op, t.bound);
    return r;
}

} // namespace Userflux
