#include "stepsscenario.h"

#include <userflux/config.h>
#include <userflux/configcheck.h>

#include <QDir>
#include <QSet>

namespace Userflux::Plugins {

using nlohmann::json;
using namespace std::chrono;

namespace {

const QStringList kMethods = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"};

QString jsonText(const json &v)
{
    return v.is_string() ? QString::fromStdString(v.get<std::string>()) : QString::fromStdString(v.dump());
}

std::optional<QList<int>> statusList(const json &v)
{
    QList<int> out;
    auto one = [&](const json &x) {
        if (!x.is_number_integer() || x.get<int>() < 100 || x.get<int>() > 599)
            return false;
        out << x.get<int>();
        return true;
    };
    if (v.is_array()) {
        if (v.empty())
            return std::nullopt;
        for (const auto &x : v)
            if (!one(x))
                return std::nullopt;
    } else if (!one(v)) {
        return std::nullopt;
    }
    return out;
}

// Collects templates from a JSON body: every string leaf that holds a variable.
void collectJsonTemplates(const json &node, const json::json_pointer &at, const QString &path, CompiledStep &step,
                          ConfigChecker &c, QStringList *vars)
{
    if (node.is_string()) {
        auto t = Template::compile(QString::fromStdString(node.get<std::string>()));
        if (!t) {
            c.error(path, t.error().message);
        } else if (!t->isConstant()) {
            *vars << t->variables();
            step.jsonTemplates.emplace_back(at, *t);
        }
    } else if (node.is_object()) {
        for (auto it = node.begin(); it != node.end(); ++it)
            collectJsonTemplates(it.value(), at / it.key(), ConfigChecker::join(path, QString::fromStdString(it.key())), step, c, vars);
    } else if (node.is_array()) {
        for (size_t i = 0; i < node.size(); ++i)
            collectJsonTemplates(node[i], at / i, ConfigChecker::index(path, int(i)), step, c, vars);
    }
}

std::optional<Template> compileTemplate(const QString &text, const QString &path, ConfigChecker &c,
                                        QList<QPair<QString, QString>> *uses)
{
    auto t = Template::compile(text);
    if (!t) {
        c.error(path, t.error().message);
        return std::nullopt;
    }
    for (const QString &v : t->variables())
        uses->append({path, v});
    return *t;
}

} // namespace

QStringList StepsScenarioPlugin::dataFiles(const json &scenario) const
{
    if (scenario.is_object() && scenario.contains("data") && scenario["data"].is_object()
        && scenario["data"].contains("csv") && scenario["data"]["csv"].is_string())
        return {QString::fromStdString(scenario["data"]["csv"].get<std::string>())};
    return {};
}

QStringList StepsScenarioPlugin::endpoints(const json &scenario) const
{
    QStringList out;
    if (scenario.is_object() && scenario.contains("steps") && scenario["steps"].is_array())
        for (const auto &st : scenario["steps"])
            if (st.is_object() && st.contains("name") && st["name"].is_string())
                out << QString::fromStdString(st["name"].get<std::string>());
    return out;
}

ConfigErrors StepsScenarioPlugin::validate(const json &scenario, const QString &baseDir) const
{
    ConfigErrors errors;
    compile(scenario, baseDir, &errors);
    return errors;
}

Result<std::shared_ptr<IScenario>> StepsScenarioPlugin::create(const ScenarioOptions &options)
{
    ConfigErrors errors;
    auto s = compile(options.config.at("scenario"), options.baseDir, &errors);
    if (!errors.isEmpty())
        return Error{QStringLiteral("config"), formatConfigErrors(errors)};
    return std::shared_ptr<IScenario>(s);
}

std::shared_ptr<StepsScenario> StepsScenarioPlugin::compile(const json &scenario, const QString &baseDir, ConfigErrors *errors)
{
    auto s = std::make_shared<StepsScenario>();
    ConfigChecker c(errors);
    const QString sp = QStringLiteral("scenario");
    if (!c.object(scenario, sp, {"plugin", "think_time", "steps", "data"}))
        return s;
    s->thinkTime = c.durationRange(scenario, "think_time", sp, false);

    QSet<QString> known = {QStringLiteral("vu"), QStringLiteral("iter")};
    if (scenario.contains("data")) {
        const json &data = scenario["data"];
        const QString dp = QStringLiteral("scenario.data");
        if (c.object(data, dp, {"csv", "mode"})) {
            const auto mode = c.oneOf(data, "mode", dp, {"per-vu", "sequential", "random"}, false);
            if (mode == QLatin1String("sequential"))
                s->dataMode = StepsScenario::DataMode::Sequential;
            else if (mode == QLatin1String("random"))
                s->dataMode = StepsScenario::DataMode::Random;
            if (auto csv = c.string(data, "csv", dp, true)) {
                if (QDir::isAbsolutePath(*csv) || QDir::cleanPath(*csv).startsWith(QLatin1String(".."))) {
                    c.error(QStringLiteral("scenario.data.csv"),
                            QStringLiteral("must be a path relative to the config file's folder, inside it"));
                } else if (!baseDir.isEmpty()) {
                    auto table = readCsvFile(QDir(baseDir).filePath(*csv));
                    if (!table)
                        c.error(QStringLiteral("scenario.data.csv"), table.error().message);
                    else {
                        for (const QString &col : std::as_const(table->columns))
                            known << QStringLiteral("row.") + col;
                        s->data = std::move(*table);
                    }
                }
            }
        }
    }

    const auto stepsValue = c.required(scenario, "steps", sp);
    if (!stepsValue)
        return s;
    if (!stepsValue->is_array() || stepsValue->empty()) {
        c.error(QStringLiteral("scenario.steps"), QStringLiteral("must be a non-empty list of requests"));
        return s;
    }
    QList<QPair<QString, QString>> uses; // (path, variable) to check once every extraction is known
    std::vector<int> useStep;            // the step index of each entry of uses
    QHash<QString, int> extractedBy;     // variable -> first step that extracts it
    QSet<QString> names;
    for (size_t i = 0; i < stepsValue->size(); ++i) {
        const json &st = (*stepsValue)[i];
        const QString p = ConfigChecker::index(QStringLiteral("scenario.steps"), int(i));
        if (!c.object(st, p, {"name", "method", "path", "headers", "json", "body", "checks", "extract", "think_time",
                              "expect_status"}))
            continue;
        CompiledStep step;
        step.name = c.string(st, "name", p, true).value_or(QStringLiteral("step%1").arg(i + 1));
        if (names.contains(step.name))
            c.error(ConfigChecker::join(p, QStringLiteral("name")),
                    QStringLiteral("\"%1\" is used by an earlier step; names identify endpoints in the results").arg(step.name));
        names << step.name;
        if (st.contains("method")) {
            if (auto m = c.string(st, "method", p, false)) {
                if (!kMethods.contains(*m))
                    c.error(ConfigChecker::join(p, QStringLiteral("method")),
                            QStringLiteral("\"%1\" is not one of %2").arg(*m, kMethods.join(", ")));
                step.method = m->toLatin1();
            }
        } else {
            step.method = "GET";
        }
        if (auto path = c.string(st, "path", p, true)) {
            if (!path->startsWith(QLatin1Char('/')) && !path->startsWith(QLatin1String("http://"))
                && !path->startsWith(QLatin1String("https://")))
                c.error(ConfigChecker::join(p, QStringLiteral("path")),
                        QStringLiteral("must start with \"/\" (resolved against target.base_url) or be an absolute URL"));
            if (auto t = compileTemplate(*path, ConfigChecker::join(p, QStringLiteral("path")), c, &uses))
                step.path = *t;
        }
        if (c.stringMap(st, "headers", p) && st.contains("headers")) {
            for (auto it = st["headers"].begin(); it != st["headers"].end(); ++it) {
                const QString hp = ConfigChecker::join(ConfigChecker::join(p, QStringLiteral("headers")), QString::fromStdString(it.key()));
                if (auto t = compileTemplate(QString::fromStdString(it.value().get<std::string>()), hp, c, &uses))
                    step.headers.emplace_back(QByteArray::fromStdString(it.key()), *t);
            }
        }
        if (st.contains("json") && st.contains("body"))
            c.error(p, QStringLiteral("use either \"json\" or \"body\", not both"));
        if (st.contains("json")) {
            step.jsonBody = st["json"];
            QStringList vars;
            collectJsonTemplates(st["json"], json::json_pointer(), ConfigChecker::join(p, QStringLiteral("json")), step, c, &vars);
            for (const QString &v : vars)
                uses.append({ConfigChecker::join(p, QStringLiteral("json")), v});
        } else if (auto body = c.string(st, "body", p, false, true)) {
            if (auto t = compileTemplate(*body, ConfigChecker::join(p, QStringLiteral("body")), c, &uses))
                step.rawBody = *t;
        }
        if (st.contains("expect_status")) {
            if (auto l = statusList(st["expect_status"]))
                step.expectStatus = *l;
            else
                c.error(ConfigChecker::join(p, QStringLiteral("expect_status")),
                        QStringLiteral("must be a status (100..599) or a non-empty list of them"));
        }
        step.thinkTime = c.durationRange(st, "think_time", p, false);

        if (st.contains("checks")) {
            const QString cp = ConfigChecker::join(p, QStringLiteral("checks"));
            if (!st["checks"].is_array()) {
                c.error(cp, QStringLiteral("must be a list of checks like {\"status\": 200}"));
            } else {
                for (size_t k = 0; k < st["checks"].size(); ++k) {
                    const json &ck = st["checks"][k];
                    const QString kp = ConfigChecker::index(cp, int(k));
                    if (!c.object(ck, kp, {"name", "status", "header", "equals", "contains", "body_contains", "json", "exists", "latency_below"}))
                        continue;
                    Check check;
                    const int kinds = int(ck.contains("status")) + int(ck.contains("header")) + int(ck.contains("body_contains"))
                        + int(ck.contains("json")) + int(ck.contains("latency_below"));
                    if (kinds != 1) {
                        c.error(kp, QStringLiteral("needs exactly one of status, header, body_contains, json, latency_below"));
                        continue;
                    }
                    if (ck.contains("status")) {
                        check.kind = Check::Kind::Status;
                        if (auto l = statusList(ck["status"])) {
                            check.statuses = *l;
                            QStringList s;
                            for (int x : *l)
                                s << QString::number(x);
                            check.name = QStringLiteral("status in [%1]").arg(s.join(", "));
                            if (l->size() == 1)
                                check.name = QStringLiteral("status == %1").arg(l->first());
                        } else {
                            c.error(ConfigChecker::join(kp, QStringLiteral("status")), QStringLiteral("must be a status or a list of them"));
                        }
                    } else if (ck.contains("header")) {
                        check.kind = Check::Kind::Header;
                        check.header = c.string(ck, "header", kp, true).value_or(QString()).toLatin1();
                        if (ck.contains("equals")) {
                            check.equals = jsonText(ck["equals"]);
                            check.expected = compileTemplate(*check.equals, ConfigChecker::join(kp, QStringLiteral("equals")), c, &uses);
                        }
                        if (auto part = c.string(ck, "contains", kp, false, false)) {
                            check.contains = part->toUtf8();
                            check.expected = compileTemplate(*part, ConfigChecker::join(kp, QStringLiteral("contains")), c, &uses);
                        }
                        check.name = check.equals ? QStringLiteral("header %1 == %2").arg(QString::fromLatin1(check.header), *check.equals)
                            : !check.contains.isEmpty() ? QStringLiteral("header %1 contains \"%2\"").arg(QString::fromLatin1(check.header), QString::fromUtf8(check.contains))
                                                        : QStringLiteral("header %1 present").arg(QString::fromLatin1(check.header));
                    } else if (ck.contains("body_contains")) {
                        check.kind = Check::Kind::BodyContains;
                        check.contains = c.string(ck, "body_contains", kp, true).value_or(QString()).toUtf8();
                        check.expected = compileTemplate(QString::fromUtf8(check.contains), ConfigChecker::join(kp, QStringLiteral("body_contains")), c, &uses);
                        check.name = QStringLiteral("body contains \"%1\"").arg(QString::fromUtf8(check.contains));
                        step.needsBody = true;
                    } else if (ck.contains("json")) {
                        check.kind = Check::Kind::JsonPointer;
                        const QString ptr = c.string(ck, "json", kp, true).value_or(QString());
                        try {
                            json::json_pointer jp(ptr.toStdString());
                            check.pointer = ptr.toStdString();
                        } catch (const json::exception &) {
                            c.error(ConfigChecker::join(kp, QStringLiteral("json")),
                                    QStringLiteral("\"%1\" is not a JSON pointer like \"/token\" or \"/items/0/id\"").arg(ptr));
                        }
                        if (ck.contains("equals")) {
                            check.jsonEquals = ck["equals"];
                            if (ck["equals"].is_string())
                                check.expected = compileTemplate(QString::fromStdString(ck["equals"].get<std::string>()),
                                                                 ConfigChecker::join(kp, QStringLiteral("equals")), c, &uses);
                        }
                        check.exists = c.boolean(ck, "exists", kp, false).value_or(true);
                        check.name = check.jsonEquals ? QStringLiteral("json %1 == %2").arg(ptr, QString::fromStdString(ck["equals"].dump()))
                                                      : QStringLiteral("json %1 %2").arg(ptr, check.exists ? QStringLiteral("exists") : QStringLiteral("absent"));
                        step.needsBody = true;
                    } else {
                        check.kind = Check::Kind::LatencyBelow;
                        if (auto d = c.duration(ck, "latency_below", kp, true, false))
                            check.below = *d;
                        check.name = QStringLiteral("latency < %1").arg(formatDuration(check.below));
                    }
                    if (ck.contains("contains") && check.kind != Check::Kind::Header)
                        c.error(ConfigChecker::join(kp, QStringLiteral("contains")), QStringLiteral("only applies to header checks (use body_contains for bodies)"));
                    if (ck.contains("equals") && check.kind != Check::Kind::Header && check.kind != Check::Kind::JsonPointer)
                        c.error(ConfigChecker::join(kp, QStringLiteral("equals")), QStringLiteral("only applies to header and json checks"));
                    if (auto n = c.string(ck, "name", kp, false))
                        check.name = *n;
                    step.checks.push_back(check);
                }
            }
        }
        if (st.contains("extract")) {
            const QString ep = ConfigChecker::join(p, QStringLiteral("extract"));
            if (c.stringMap(st, "extract", p)) {
                for (auto it = st["extract"].begin(); it != st["extract"].end(); ++it) {
                    const QString var = QString::fromStdString(it.key());
                    const QString spec = QString::fromStdString(it.value().get<std::string>());
                    const QString vp = ConfigChecker::join(ep, var);
                    Extraction x;
                    x.variable = var;
                    if (var == QLatin1String("vu") || var == QLatin1String("iter") || var.startsWith(QLatin1String("row."))) {
                        c.error(vp, QStringLiteral("\"%1\" is a built-in variable name").arg(var));
                        continue;
                    }
                    if (spec.startsWith(QLatin1String("json:"))) {
                        x.from = Extraction::From::JsonPointer;
                        x.pointer = spec.mid(5).toStdString();
                        try {
                            json::json_pointer jp(x.pointer);
                        } catch (const json::exception &) {
                            c.error(vp, QStringLiteral("\"%1\" is not a JSON pointer like \"json:/token\"").arg(spec));
                            continue;
                        }
                        step.needsBody = true;
                    } else if (spec.startsWith(QLatin1String("header:")) && spec.size() > 7) {
                        x.from = Extraction::From::Header;
                        x.header = spec.mid(7).trimmed().toLatin1();
                    } else {
                        c.error(vp, QStringLiteral("\"%1\" must be \"json:/pointer\" or \"header:Name\"").arg(spec));
                        continue;
                    }
                    known << var;
                    if (!extractedBy.contains(var))
                        extractedBy.insert(var, int(i));
                    step.extractions.push_back(x);
                }
            }
        }
        s->steps.push_back(std::move(step));
        useStep.resize(size_t(uses.size()), int(i));
    }
    for (qsizetype u = 0; u < uses.size(); ++u) {
        const auto &[path, var] = uses[u];
        if (known.contains(var)) {
            // A variable must be extracted by an earlier step: otherwise a vUser's first iteration sends it empty.
            const auto by = extractedBy.constFind(var);
            if (by != extractedBy.constEnd() && *by >= useStep[size_t(u)])
                c.error(path, QStringLiteral("{{%1}} is extracted by scenario.steps[%2], which runs %3: a vUser's first "
                                             "iteration would send it empty")
                                  .arg(var)
                                  .arg(*by)
                                  .arg(*by == useStep[size_t(u)] ? QStringLiteral("after this request")
                                                                 : QStringLiteral("later")));
            continue;
        }
        if (var.startsWith(QLatin1String("row."))) {
            if (!scenario.contains("data"))
                c.error(path, QStringLiteral("{{%1}} needs a data file: scenario.data.csv").arg(var));
            else if (s->data)
                c.error(path, QStringLiteral("{{%1}}: the data file has no column \"%2\" (columns: %3)")
                                  .arg(var, var.mid(4), s->data->columns.join(", ")));
            // else: the file could not be read (already an error) or was not checked (no base folder)
            continue;
        }
        c.error(path, QStringLiteral("{{%1}} is not defined (built-ins: vu, iter, row.<column>; or a name an earlier "
                                     "step extracts)").arg(var));
    }
    return s;
}

QStringList StepsScenario::endpoints() const
{
    QStringList out;
    for (const CompiledStep &s : steps)
        out << s.name;
    return out;
}

// ---------------------------------------------------------------------------------------------------------------
namespace {

class StepsVu final : public IVuScript {
public:
    StepsVu(StepsScenario *scenario, int vu) : m_s(scenario), m_vu(vu) {}

    QCoro::Task<bool> iteration(IVuContext &ctx) override
    {
        pickRow(ctx);
        for (const CompiledStep &step : m_s->steps) {
            if (ctx.stopping())
                co_return false;
            StepRequest req = buildRequest(step, ctx);
            StepResponse resp = co_await ctx.request(std::move(req));
            if (resp.interrupted())
                co_return false;
            runChecks(step, resp, ctx);
            extract(step, resp, ctx);
            const auto &think = step.thinkTime ? step.thinkTime : m_s->thinkTime;
            if (think) {
                const qint64 span = (think->max - think->min).count();
                const auto d = think->min + microseconds(span > 0 ? qint64(ctx.random() % quint64(span + 1)) : 0);
                co_await ctx.sleep(d);
            }
        }
        co_return true; // think time cut by a hard stop after the last request still ends a whole iteration
    }

private:
    void pickRow(IVuContext &ctx)
    {
        if (!m_s->data)
            return;
        const size_t n = m_s->data->rows.size();
        size_t index = 0;
        switch (m_s->dataMode) {
        case StepsScenario::DataMode::PerVu: index = size_t(m_vu - 1) % n; break;
        case StepsScenario::DataMode::Sequential: index = size_t(m_s->sequence.fetch_add(1) % n); break;
        case StepsScenario::DataMode::Random: index = size_t(ctx.random() % n); break;
        }
        m_row = &m_s->data->rows[index];
    }

    std::optional<QString> lookup(const QString &name, const IVuContext &ctx) const
    {
        if (name == QLatin1String("vu"))
            return QString::number(ctx.vu());
        if (name == QLatin1String("iter"))
            return QString::number(ctx.iteration());
        if (name.startsWith(QLatin1String("row.")) && m_row) {
            const qsizetype col = m_s->data->columns.indexOf(name.mid(4));
            if (col >= 0)
                return m_row->at(col);
            return std::nullopt;
        }
        auto it = m_vars.constFind(name);
        if (it != m_vars.constEnd())
            return *it;
        return std::nullopt;
    }

    // The JSON value of a variable that has one: vu and iter are numbers, and a value extracted from a JSON body
    // keeps its type, so {"item_id": "{{item}}"} sends a number when the item id was one.
    std::optional<json> typedValue(const QString &name, const IVuContext &ctx) const
    {
        if (name == QLatin1String("vu"))
            return json(ctx.vu());
        if (name == QLatin1String("iter"))
            return json(ctx.iteration());
        auto it = m_jsonVars.constFind(name);
        if (it != m_jsonVars.constEnd())
            return *it;
        return std::nullopt;
    }

    QString render(const Template &t, IVuContext &ctx)
    {
        if (t.isConstant())
            return t.source();
        QStringList missing;
        QString out = t.render([&](const QString &n) { return lookup(n, ctx); }, &missing);
        for (const QString &m : std::as_const(missing))
            if (!m_warned.contains(m)) {
                m_warned << m;
                ctx.log(QStringLiteral("{{%1}} has no value yet (an extraction failed?); rendered as empty").arg(m));
            }
        return out;
    }

    StepRequest buildRequest(const CompiledStep &step, IVuContext &ctx)
    {
        StepRequest r;
        r.step = step.name;
        r.method = step.method;
        r.path = render(step.path, ctx);
        for (const auto &[name, value] : step.headers)
            r.headers.append({name, render(value, ctx).toUtf8()});
        if (step.jsonBody) {
            json body = *step.jsonBody;
            for (const auto &[ptr, t] : step.jsonTemplates) {
                if (t.isSingleVariable()) {
                    if (auto typed = typedValue(t.variables().front(), ctx)) {
                        body[ptr] = *typed;
                        continue;
                    }
                }
                body[ptr] = render(t, ctx).toStdString();
            }
            r.body = QByteArray::fromStdString(body.dump());
            if (headerValue(r.headers, "content-type").isEmpty())
                r.headers.append({QByteArrayLiteral("Content-Type"), QByteArrayLiteral("application/json")});
        } else if (step.rawBody) {
            r.body = render(*step.rawBody, ctx).toUtf8();
        }
        r.wantBody = step.needsBody;
        r.expectStatus = step.expectStatus;
        return r;
    }

    static const json *parsed(const StepResponse &resp, std::optional<json> &cache, bool &tried)
    {
        if (!tried) {
            tried = true;
            cache = json::parse(resp.body.constBegin(), resp.body.constEnd(), nullptr, false);
            if (cache->is_discarded())
                cache.reset();
        }
        return cache ? &*cache : nullptr;
    }

    void runChecks(const CompiledStep &step, const StepResponse &resp, IVuContext &ctx)
    {
        std::optional<json> body;
        bool tried = false;
        for (const Check &c : step.checks) {
            bool pass = false;
            switch (c.kind) {
            case Check::Kind::Status: pass = c.statuses.contains(resp.status); break;
            case Check::Kind::Header: {
                const QByteArray v = headerValue(resp.headers, c.header);
                const QString expected = c.expected ? render(*c.expected, ctx) : QString();
                pass = resp.status > 0
                    && (c.equals ? QString::fromUtf8(v) == expected
                                 : !c.contains.isEmpty() ? QString::fromUtf8(v).contains(expected) : !v.isEmpty());
                break;
            }
            case Check::Kind::BodyContains:
                pass = resp.body.contains(c.expected ? render(*c.expected, ctx).toUtf8() : c.contains);
                break;
            case Check::Kind::JsonPointer: {
                const json *doc = parsed(resp, body, tried);
                const json::json_pointer ptr(c.pointer);
                const bool has = doc && doc->contains(ptr);
                if (!c.jsonEquals) {
                    pass = has == c.exists;
                } else if (c.expected && !c.expected->isConstant()) {
                    // A templated expectation is text: compare with the value as text (strings without quotes).
                    pass = has && jsonText((*doc)[ptr]) == render(*c.expected, ctx);
                } else {
                    pass = has && (*doc)[ptr] == *c.jsonEquals;
                }
                break;
            }
            case Check::Kind::LatencyBelow: pass = resp.status > 0 && resp.latency < c.below; break;
            }
            ctx.recordCheck(step.name, c.name, pass);
        }
    }

    void extract(const CompiledStep &step, const StepResponse &resp, IVuContext &ctx)
    {
        std::optional<json> body;
        bool tried = false;
        for (const Extraction &x : step.extractions) {
            std::optional<QString> value;
            m_jsonVars.remove(x.variable);
            if (x.from == Extraction::From::Header) {
                const QByteArray v = headerValue(resp.headers, x.header);
                if (!v.isEmpty())
                    value = QString::fromUtf8(v);
            } else if (const json *doc = parsed(resp, body, tried)) {
                const json::json_pointer ptr(x.pointer);
                if (doc->contains(ptr)) {
                    value = jsonText((*doc)[ptr]);
                    m_jsonVars.insert(x.variable, (*doc)[ptr]);
                }
            }
            if (value)
                m_vars.insert(x.variable, *value);
            else
                m_vars.remove(x.variable); // a stale token from an earlier iteration would hide the failure
            if (!value && resp.status > 0 && !m_warned.contains(x.variable + QLatin1String("@extract"))) {
                m_warned << x.variable + QLatin1String("@extract");
                ctx.log(QStringLiteral("step %1: could not extract %2 (status %3)").arg(step.name, x.variable).arg(resp.status));
            }
        }
    }

    StepsScenario *m_s;
    int m_vu;
    const QStringList *m_row = nullptr;
    QHash<QString, QString> m_vars;
    QHash<QString, json> m_jsonVars; // extracted from JSON, with their JSON type
    QSet<QString> m_warned;
};

} // namespace

std::unique_ptr<IVuScript> StepsScenario::createVu(int vu)
{
    return std::make_unique<StepsVu>(this, vu);
}

} // namespace Userflux::Plugins
