#include "userflux/config.h"

#include "userflux/configcheck.h"
#include "userflux/pluginhost.h"
#include "userflux/thresholds.h"

#include <QFile>
#include <QUrl>

#include <algorithm>
#include <cmath>

namespace Userflux {

using nlohmann::json;

Result<json> readJsonFile(const QString &path)
{
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly))
        return Error{QStringLiteral("io"), QStringLiteral("cannot read %1: %2").arg(path, f.errorString())};
    const QByteArray data = f.readAll();
    try {
        return json::parse(data.constBegin(), data.constEnd());
    } catch (const json::parse_error &e) {
        // Turn the byte offset into line:column, which is what a person editing the file needs.
        const qsizetype offset = std::min<qsizetype>(qsizetype(e.byte), data.size());
        const qsizetype line = data.left(offset).count('\n') + 1;
        const qsizetype col = offset - data.left(offset).lastIndexOf('\n');
        QString what = QString::fromStdString(e.what());
        what = what.mid(what.indexOf(QLatin1String(": ")) + 2);
        return Error{QStringLiteral("json"),
                     QStringLiteral("%1:%2:%3: invalid JSON: %4").arg(path).arg(line).arg(col).arg(what)};
    }
}

namespace {

void validateTarget(const json &config, ConfigChecker &c)
{
    auto target = c.required(config, "target", QString());
    if (!target || !c.object(*target, QStringLiteral("target"),
                             {"base_url", "http_version", "timeout", "headers", "tls", "follow_redirects", "max_redirects"}))
        return;
    const QString p = QStringLiteral("target");
    std::optional<QString> scheme;
    if (auto url = c.string(*target, "base_url", p, true)) {
        const QUrl u(*url, QUrl::StrictMode);
        if (!u.isValid() || (u.scheme() != QLatin1String("http") && u.scheme() != QLatin1String("https")) || u.host().isEmpty())
            c.error(QStringLiteral("target.base_url"),
                    QStringLiteral("\"%1\" is not an http:// or https:// URL with a host").arg(*url));
        else
            scheme = u.scheme();
        if (u.isValid() && (u.hasQuery() || u.hasFragment()))
            c.error(QStringLiteral("target.base_url"), QStringLiteral("must not have a query or fragment"));
    }
    if (auto v = c.oneOf(*target, "http_version", p, {"auto", "1.1", "2", "h2c"}, false)) {
        if (*v == QLatin1String("2") && scheme == QLatin1String("http"))
            c.error(QStringLiteral("target.http_version"),
                    QStringLiteral("\"2\" negotiates HTTP/2 by TLS ALPN and needs an https:// base_url; use \"h2c\" for "
                                   "cleartext HTTP/2"));
        if (*v == QLatin1String("h2c") && scheme == QLatin1String("https"))
            c.error(QStringLiteral("target.http_version"), QStringLiteral("\"h2c\" is cleartext; with https:// use \"2\""));
    }
    c.duration(*target, "timeout", p, false, false);
    c.stringMap(*target, "headers", p);
    if (target->contains("tls")) {
        const json &tls = (*target)["tls"];
        if (c.object(tls, QStringLiteral("target.tls"), {"verify", "ca_file"})) {
            c.boolean(tls, "verify", QStringLiteral("target.tls"), false);
            if (tls.contains("ca_file") && !tls["ca_file"].is_null())
                c.string(tls, "ca_file", QStringLiteral("target.tls"), false);
        }
    }
    c.boolean(*target, "follow_redirects", p, false);
    c.integer(*target, "max_redirects", p, 0, 50, false);
}

void validateLoad(const json &config, ConfigChecker &c)
{
    auto load = c.required(config, "load", QString());
    if (!load)
        return;
    const QString p = QStringLiteral("load");
    if (!load->is_object()) {
        c.object(*load, p, {});
        return;
    }
    const auto model = c.oneOf(*load, "model", p, {"closed", "open"}, false);
    if (model == QLatin1String("open")) {
        c.object(*load, p, {"model", "stages", "start_rate", "max_vus", "graceful_stop", "workers"});
        c.number(*load, "start_rate", p, 0, 1e6, false);
        c.integer(*load, "max_vus", p, 1, 100000, true);
        c.duration(*load, "graceful_stop", p, false, true);
        c.integer(*load, "workers", p, 1, 256, false);
        const json stages = load->value("stages", json());
        if (!stages.is_array() || stages.empty()) {
            c.error(QStringLiteral("load.stages"), QStringLiteral("must be a non-empty list of {\"duration\": \"1m\", "
                                                                  "\"rate\": 200} (iterations per second)"));
            return;
        }
        for (size_t i = 0; i < stages.size(); ++i) {
            const QString sp = ConfigChecker::index(QStringLiteral("load.stages"), int(i));
            if (!c.object(stages[i], sp, {"duration", "rate"}))
                continue;
            c.duration(stages[i], "duration", sp, true, true);
            c.number(stages[i], "rate", sp, 0, 1e6, true);
        }
        return;
    }
    const bool hasStages = load->contains("stages");
    const bool hasIterations = load->contains("vus") || load->contains("iterations");
    if (hasStages && hasIterations) {
        c.error(p, QStringLiteral("use either \"stages\" or \"vus\" with \"iterations\", not both"));
        return;
    }
    if (!hasStages && !hasIterations) {
        c.error(p, QStringLiteral("needs \"stages\": [{\"duration\": \"30s\", \"target\": 20}, ...] or \"vus\" and "
                                  "\"iterations\""));
        return;
    }
    if (hasStages) {
        c.object(*load, p, {"model", "stages", "graceful_stop", "workers"});
        const json &stages = (*load)["stages"];
        if (!stages.is_array() || stages.empty()) {
            c.error(QStringLiteral("load.stages"), QStringLiteral("must be a non-empty list of {duration, target}"));
        } else {
            bool anyPositive = false;
            for (size_t i = 0; i < stages.size(); ++i) {
                const QString sp = ConfigChecker::index(QStringLiteral("load.stages"), int(i));
                if (!c.object(stages[i], sp, {"duration", "target"}))
                    continue;
                c.duration(stages[i], "duration", sp, true, true);
                if (auto t = c.integer(stages[i], "target", sp, 0, 100000, true); t && *t > 0)
                    anyPositive = true;
            }
            if (!anyPositive && !c.hasErrors())
                c.error(QStringLiteral("load.stages"), QStringLiteral("no stage has a target above 0: nothing would run"));
        }
    } else {
        c.object(*load, p, {"model", "vus", "iterations", "graceful_stop", "max_duration", "workers"});
        c.integer(*load, "vus", p, 1, 100000, true);
        c.integer(*load, "iterations", p, 1, 1000000000, true);
        c.duration(*load, "max_duration", p, false, false);
    }
    c.duration(*load, "graceful_stop", p, false, true);
    c.integer(*load, "workers", p, 1, 256, false);
}

void validateSinks(const json &config, PluginHost &host, ConfigChecker &c, ConfigErrors *errors)
{
    if (!config.contains("sinks"))
        return;
    const json &sinks = config["sinks"];
    if (!sinks.is_array()) {
        c.error(QStringLiteral("sinks"), QStringLiteral("must be a list like [{\"plugin\": \"file\"}]"));
        return;
    }
    for (size_t i = 0; i < sinks.size(); ++i) {
        const QString sp = ConfigChecker::index(QStringLiteral("sinks"), int(i));
        if (!sinks[i].is_object()) {
            c.error(sp, QStringLiteral("must be an object like {\"plugin\": \"file\"}"));
            continue;
        }
        auto id = c.string(sinks[i], "plugin", sp, true);
        if (!id)
            continue;
        auto plugin = host.sink(*id);
        if (!plugin) {
            c.error(ConfigChecker::join(sp, QStringLiteral("plugin")), plugin.error().message);
            continue;
        }
        errors->append((*plugin)->validate(sinks[i], sp));
    }
}

} // namespace

ConfigErrors validateConfig(const json &config, PluginHost &host, const QString &baseDir)
{
    ConfigErrors errors;
    std::optional<QStringList> endpoints; // known once the scenario plugin has looked at its section
    ConfigChecker c(&errors);
    if (!c.object(config, QString(),
                  {"schema", "name", "description", "target", "load", "scenario", "protocol", "sinks", "thresholds"}))
        return errors;
    if (config.contains("schema") && config["schema"] != ConfigSchemaId)
        c.error(QStringLiteral("schema"), QStringLiteral("must be \"%1\"").arg(QLatin1String(ConfigSchemaId)));
    c.string(config, "name", QString(), false);
    c.string(config, "description", QString(), false, true);
    validateTarget(config, c);
    validateLoad(config, c);

    if (auto scenario = c.required(config, "scenario", QString())) {
        if (scenario->is_object()) {
            if (auto id = c.string(*scenario, "plugin", QStringLiteral("scenario"), true)) {
                auto plugin = host.scenario(*id);
                if (!plugin) {
                    c.error(QStringLiteral("scenario.plugin"), plugin.error().message);
                } else {
                    errors.append((*plugin)->validate(*scenario, baseDir));
                    endpoints = (*plugin)->endpoints(*scenario);
                }
            }
        } else {
            c.object(*scenario, QStringLiteral("scenario"), {});
        }
    }

    if (config.contains("protocol") && !config["protocol"].is_object()) {
        c.object(config["protocol"], QStringLiteral("protocol"), {});
    } else {
        const QString id = config.contains("protocol") && config["protocol"].contains("plugin")
            ? QString::fromStdString(config["protocol"].value("plugin", std::string()))
            : QStringLiteral("http");
        auto plugin = host.protocol(id);
        if (!plugin)
            c.error(QStringLiteral("protocol.plugin"), plugin.error().message);
        else
            errors.append((*plugin)->validate(config));
    }

    validateSinks(config, host, c, &errors);
    if (config.contains("thresholds")) {
        QHash<QString, bool> reported;
        for (const Threshold &t : parseThresholds(config["thresholds"], &errors)) {
            // A threshold on an endpoint no step has would only fail, with "no data", after the whole run.
            if (t.scopeKey == QLatin1String("endpoint") && endpoints && !endpoints->contains(t.scopeValue)
                && !std::exchange(reported[t.metric], true))
                c.error(QStringLiteral("thresholds[\"%1\"]").arg(t.metric),
                        QStringLiteral("no step is named \"%1\" (steps: %2)").arg(t.scopeValue, endpoints->join(", ")));
        }
    }
    return errors;
}

QString formatConfigErrors(const ConfigErrors &errors)
{
    QStringList lines;
    for (const ConfigError &e : errors)
        lines << (e.path.isEmpty() ? e.message : e.path + QStringLiteral(": ") + e.message);
    return lines.join(QLatin1Char('\n'));
}

int LoadPlan::maxVus() const
{
    if (model == Model::ClosedIterations || model == Model::Open)
        return vus;
    int m = 0;
    for (const Stage &s : stages)
        m = std::max(m, s.target);
    return m;
}

std::chrono::microseconds LoadPlan::plannedDuration() const
{
    if (model == Model::ClosedIterations)
        return maxDuration.value_or(std::chrono::microseconds(0));
    std::chrono::microseconds total{0};
    if (model == Model::Open) {
        for (const RateStage &s : rateStages)
            total += s.duration;
        return total;
    }
    for (const Stage &s : stages)
        total += s.duration;
    return total;
}

double LoadPlan::rateAt(std::chrono::microseconds t) const
{
    double from = startRate.value_or(rateStages.empty() ? 0.0 : rateStages.front().rate);
    std::chrono::microseconds begin{0};
    for (const RateStage &s : rateStages) {
        const auto end = begin + s.duration;
        if (t < end) {
            if (s.duration.count() <= 0)
                return s.rate;
            const double frac = double((t - begin).count()) / double(s.duration.count());
            return from + (s.rate - from) * std::clamp(frac, 0.0, 1.0);
        }
        from = s.rate;
        begin = end;
    }
    return 0.0;
}

std::optional<std::chrono::microseconds> LoadPlan::arrivalTime(qint64 k) const
{
    // Walk the stages accumulating the integral of the rate; inside the stage that reaches k, solve
    // r0*tau + (r1 - r0)*tau^2/(2D) = k - before for tau (seconds).
    double before = 0;    // arrivals due before this stage
    double from = startRate.value_or(rateStages.empty() ? 0.0 : rateStages.front().rate);
    double beginS = 0;
    const double target = double(k);
    for (const RateStage &s : rateStages) {
        const double d = std::chrono::duration<double>(s.duration).count();
        const double r0 = from, r1 = s.rate;
        const double inStage = d > 0 ? (r0 + r1) / 2.0 * d : 0.0;
        if (d > 0 && target < before + inStage - 1e-9) {
            const double x = target - before;
            const double a = (r1 - r0) / (2.0 * d);
            double tau;
            if (std::abs(a) < 1e-12)
                tau = x / r0;
            else
                tau = (-r0 + std::sqrt(std::max(0.0, r0 * r0 + 4.0 * a * x))) / (2.0 * a);
            tau = std::clamp(tau, 0.0, d);
            return std::chrono::microseconds(qint64(std::llround((beginS + tau) * 1e6)));
        }
        before += inStage;
        from = r1;
        beginS += d;
    }
    return std::nullopt;
}

double LoadPlan::targetAt(std::chrono::microseconds t) const
{
    if (model == Model::ClosedIterations)
        return vus;
    double from = 0;
    std::chrono::microseconds begin{0};
    for (const Stage &s : stages) {
        const auto end = begin + s.duration;
        if (t < end) {
            if (s.duration.count() <= 0)
                return s.target;
            const double frac = double((t - begin).count()) / double(s.duration.count());
            return from + (s.target - from) * std::clamp(frac, 0.0, 1.0);
        }
        from = s.target;
        begin = end;
    }
    return stages.empty() ? 0.0 : double(stages.back().target);
}

Result<LoadPlan> parseLoadPlan(const json &load)
{
    ConfigErrors errors;
    ConfigChecker c(&errors);
    LoadPlan plan;
    if (!load.is_object())
        return Error{QStringLiteral("config"), QStringLiteral("load: must be an object")};
    if (load.value("model", std::string("closed")) == "open") {
        plan.model = LoadPlan::Model::Open;
        plan.vus = int(c.integer(load, "max_vus", QStringLiteral("load"), 1, 100000, true).value_or(0));
        plan.startRate = c.number(load, "start_rate", QStringLiteral("load"), 0, 1e6, false);
        if (load.contains("stages") && load["stages"].is_array()) {
            for (size_t i = 0; i < load["stages"].size(); ++i) {
                const QString sp = ConfigChecker::index(QStringLiteral("load.stages"), int(i));
                RateStage s;
                s.duration = c.duration(load["stages"][i], "duration", sp, true).value_or(std::chrono::microseconds(0));
                s.rate = c.number(load["stages"][i], "rate", sp, 0, 1e6, true).value_or(0);
                plan.rateStages.push_back(s);
            }
        }
    } else if (load.contains("stages")) {
        plan.model = LoadPlan::Model::ClosedStages;
        if (load["stages"].is_array()) {
            for (size_t i = 0; i < load["stages"].size(); ++i) {
                const QString sp = ConfigChecker::index(QStringLiteral("load.stages"), int(i));
                Stage s;
                s.duration = c.duration(load["stages"][i], "duration", sp, true).value_or(std::chrono::microseconds(0));
                s.target = int(c.integer(load["stages"][i], "target", sp, 0, 100000, true).value_or(0));
                plan.stages.push_back(s);
            }
        }
    } else {
        plan.model = LoadPlan::Model::ClosedIterations;
        plan.vus = int(c.integer(load, "vus", QStringLiteral("load"), 1, 100000, true).value_or(0));
        plan.iterations = c.integer(load, "iterations", QStringLiteral("load"), 1, 1000000000, true).value_or(0);
        plan.maxDuration = c.duration(load, "max_duration", QStringLiteral("load"), false);
    }
    if (auto g = c.duration(load, "graceful_stop", QStringLiteral("load"), false))
        plan.gracefulStop = *g;
    plan.workers = int(c.integer(load, "workers", QStringLiteral("load"), 1, 256, false).value_or(0));
    if (!errors.isEmpty())
        return Error{QStringLiteral("config"), formatConfigErrors(errors)};
    return plan;
}

} // namespace Userflux
