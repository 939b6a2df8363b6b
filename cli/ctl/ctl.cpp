#include "ctl.h"

#include "userflux/config.h"
#include "userflux/duration.h"
#include "userflux/pluginhost.h"
#include "userflux/runid.h"
#include "userflux/runstore.h"

#include <QCoreApplication>
#include <QDateTime>
#include <QDir>
#include <QElapsedTimer>
#include <QFileInfo>
#include <QMap>
#include <QProcess>
#include <QProcessEnvironment>
#include <QStandardPaths>

#include <QCoroProcess>
#include <QCoroTimer>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <unistd.h>

namespace Userflux {

using json = nlohmann::json;
using namespace std::chrono_literals;

namespace {

enum ExitCode { ExitOk = 0, ExitFailed = 1, ExitUsage = 2, ExitEnvironment = 3, ExitThresholds = 99, ExitAborted = 130 };

void writeTo(FILE *stream, const QString &text)
{
    const QByteArray bytes = text.toUtf8();
    std::fwrite(bytes.constData(), 1, static_cast<size_t>(bytes.size()), stream);
    std::fflush(stream);
}
void outLine(const QString &line) { writeTo(stdout, line + QLatin1Char('\n')); }
void errLine(const QString &line) { writeTo(stderr, line + QLatin1Char('\n')); }
int fail(int code, const QString &message)
{
    errLine(QStringLiteral("userfluxctl: ") + message);
    return code;
}

// Ctrl-C while following a run: counted by the handler, looked at by the follow loop.
volatile std::sig_atomic_t g_interrupts = 0;
extern "C" void onInterrupt(int) { g_interrupts = g_interrupts + 1; }

class InterruptGuard {
public:
    InterruptGuard()
    {
        g_interrupts = 0;
        struct sigaction sa = {};
        sa.sa_handler = onInterrupt;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART;
        ::sigaction(SIGINT, &sa, &m_previous);
    }
    ~InterruptGuard() { ::sigaction(SIGINT, &m_previous, nullptr); }

private:
    struct sigaction m_previous = {};
};

// Which exit code a control API error means.
int exitCodeFor(const Error &e)
{
    static const QStringList environment{QStringLiteral("no_daemon"),    QStringLiteral("unreachable"),
                                         QStringLiteral("timeout"),      QStringLiteral("unauthorized"),
                                         QStringLiteral("wrong_daemon"), QStringLiteral("daemon_start_failed"),
                                         QStringLiteral("bad_response"), QStringLiteral("shutting_down")};
    static const QStringList usage{QStringLiteral("invalid_run_id"), QStringLiteral("invalid_config"),
                                   QStringLiteral("invalid_data_file"), QStringLiteral("bad_request")};
    if (environment.contains(e.code))
        return ExitEnvironment;
    if (usage.contains(e.code))
        return ExitUsage;
    return ExitFailed;
}

QString str(const json &obj, const char *key)
{
    if (!obj.is_object())
        return {};
    const auto it = obj.find(key);
    return it != obj.end() && it->is_string() ? QString::fromStdString(it->get<std::string>()) : QString();
}

double num(const json &obj, const char *key, double fallback = 0)
{
    if (!obj.is_object())
        return fallback;
    const auto it = obj.find(key);
    return it != obj.end() && it->is_number() ? it->get<double>() : fallback;
}

bool hasNumber(const json &obj, const char *key)
{
    return obj.is_object() && obj.contains(key) && obj[key].is_number();
}

// 0:07, 2:50, 1:02:03
QString clock(double seconds)
{
    const qint64 s = std::max<qint64>(0, static_cast<qint64>(std::floor(seconds)));
    if (s >= 3600)
        return QStringLiteral("%1:%2:%3").arg(s / 3600).arg((s / 60) % 60, 2, 10, QLatin1Char('0')).arg(s % 60, 2, 10, QLatin1Char('0'));
    return QStringLiteral("%1:%2").arg(s / 60, 2, 10, QLatin1Char('0')).arg(s % 60, 2, 10, QLatin1Char('0'));
}

// 12.3s, 2m50s, 1h2m3s
QString humanDuration(double seconds)
{
    if (seconds < 60)
        return QString::number(seconds, 'f', 1) + QLatin1Char('s');
    return formatDuration(std::chrono::seconds(static_cast<qint64>(std::llround(seconds))));
}

QString number(double value, int decimals = 1)
{
    return QString::number(value, 'f', decimals);
}

QString percent(double rate)
{
    return QString::number(rate * 100.0, 'f', rate > 0 && rate < 0.001 ? 3 : 2) + QLatin1Char('%');
}

double secondsBetween(const QString &from, const QString &to)
{
    const QDateTime a = QDateTime::fromString(from, Qt::ISODateWithMs);
    const QDateTime b = QDateTime::fromString(to, Qt::ISODateWithMs);
    if (!a.isValid() || !b.isValid())
        return -1;
    return a.msecsTo(b) / 1000.0;
}

// "vUsers 50 | 812.4 req/s | p95 23.1 ms | requests 9823 | errors 3 (0.03%)"
QString liveFigures(const json &live)
{
    const QString p95 = hasNumber(live, "p95_ms") ? number(num(live, "p95_ms")) + QStringLiteral(" ms") : QStringLiteral("-");
    return QStringLiteral("vUsers %1 | %2 req/s | p95 %3 | requests %4 | errors %5 (%6)")
        .arg(static_cast<qint64>(num(live, "vus")))
        .arg(number(num(live, "rps")))
        .arg(p95)
        .arg(static_cast<qint64>(num(live, "requests")))
        .arg(static_cast<qint64>(num(live, "errors")))
        .arg(percent(num(live, "error_rate")));
}

QString planSummary(const LoadPlan &plan)
{
    if (plan.model == LoadPlan::Model::ClosedIterations) {
        QString s = QStringLiteral("closed model, %1 vUser(s) x %2 iteration(s)").arg(plan.vus).arg(plan.iterations);
        if (plan.maxDuration)
            s += QStringLiteral(", at most %1").arg(formatDuration(*plan.maxDuration));
        return s;
    }
    return QStringLiteral("closed model, %1 stage(s), up to %2 vUsers, %3")
        .arg(plan.stages.size())
        .arg(plan.maxVus())
        .arg(formatDuration(plan.plannedDuration()));
}

double plannedSeconds(const json &config)
{
    if (!config.is_object() || !config.contains("load"))
        return 0;
    Result<LoadPlan> plan = parseLoadPlan(config["load"]);
    if (!plan)
        return 0;
    return std::chrono::duration<double>(plan->plannedDuration()).count();
}

// A table with left-aligned columns separated by two spaces.
void printTable(const QList<QStringList> &rows)
{
    QList<int> widths;
    for (const QStringList &row : rows) {
        for (int i = 0; i < row.size(); ++i) {
            if (widths.size() <= i)
                widths.append(0);
            widths[i] = std::max(widths[i], static_cast<int>(row[i].size()));
        }
    }
    for (const QStringList &row : rows) {
        QString line;
        for (int i = 0; i < row.size(); ++i)
            line += i + 1 < row.size() ? row[i].leftJustified(widths[i] + 2) : row[i];
        outLine(line);
    }
}

QString analyticsDir()
{
    return QDir::cleanPath(QCoreApplication::applicationDirPath() + QStringLiteral("/../share/userflux/analytics"));
}

} // namespace

// ---------------------------------------------------------------------------------------------------------------

QString Ctl::usageText()
{
    return QStringLiteral(
        "Usage: userfluxctl [--runs-dir DIR] [--plugin-dir DIR]... COMMAND [ARGS]\n"
        "\n"
        "Drives Userflux load-test runs through userfluxd, the daemon of the runs root (started on demand).\n"
        "\n"
        "Commands:\n"
        "  run CONFIG [--follow] [--report] [--name NAME]\n"
        "                     start a run of CONFIG and print its id once it has started; with --follow show\n"
        "                     live progress until it ends (Ctrl-C stops the run) and print the result\n"
        "  status [RUN]       a run's state and live figures, or every active run\n"
        "  list               every run of the runs root, newest first\n"
        "  stop RUN           ask a run to stop gracefully\n"
        "  report RUN         write report.html and PNG charts into the run dir (Python 3 + matplotlib)\n"
        "  validate CONFIG    check a config locally, without the daemon; print every error\n"
        "  plugins            the plugins the daemon found: id, kind, version, api, status\n"
        "\n"
        "Options:\n"
        "  --runs-dir DIR     runs root (default: $USERFLUX_RUNS_DIR, else ./runs)\n"
        "  --plugin-dir DIR   extra plugin folder for validate and for a daemon started by this command\n"
        "                     (repeatable)\n"
        "  --follow           run: follow the run to its end\n"
        "  --report           run: generate the report when the run has ended\n"
        "  --name NAME        run: use NAME as the run's name instead of the config's\n"
        "  -h, --help         show this help\n"
        "  --version          show the version\n"
        "\n"
        "Environment: USERFLUX_RUNS_DIR, USERFLUX_PLUGIN_PATH, USERFLUX_PYTHON (the Python 3 for reports).\n"
        "Exit codes: 0 ok, 1 the run failed, 2 bad usage or config, 3 something missing (daemon, Python,\n"
        "matplotlib), 99 thresholds failed, 130 aborted.\n");
}

Result<CtlOptions> parseCtlArguments(const QStringList &arguments)
{
    CtlOptions o;
    auto usage = [](const QString &message) { return Error{QStringLiteral("usage"), message}; };
    const QStringList args = arguments.mid(1);
    bool optionsEnded = false;
    QStringList seen; // command-specific options, checked against the command below
    for (qsizetype i = 0; i < args.size(); ++i) {
        QString arg = args[i];
        if (optionsEnded || !arg.startsWith(QLatin1Char('-')) || arg == QLatin1String("-")) {
            if (o.command.isEmpty())
                o.command = arg;
            else
                o.positional << arg;
            continue;
        }
        if (arg == QLatin1String("--")) {
            optionsEnded = true;
            continue;
        }
        QString value;
        bool hasInlineValue = false;
        if (arg.startsWith(QLatin1String("--")) && arg.contains(QLatin1Char('='))) {
            value = arg.section(QLatin1Char('='), 1);
            arg = arg.section(QLatin1Char('='), 0, 0);
            hasInlineValue = true;
        }
        auto takeValue = [&]() -> std::optional<QString> {
            if (hasInlineValue)
                return value;
            if (i + 1 >= args.size())
                return std::nullopt;
            return args[++i];
        };
        if (arg == QLatin1String("--runs-dir") || arg == QLatin1String("--plugin-dir") || arg == QLatin1String("--name")) {
            const std::optional<QString> v = takeValue();
            if (!v || v->isEmpty())
                return usage(QStringLiteral("%1 needs a value").arg(arg));
            if (arg == QLatin1String("--runs-dir"))
                o.runsDir = *v;
            else if (arg == QLatin1String("--plugin-dir"))
                o.pluginDirs << *v;
            else {
                o.name = *v;
                seen << arg;
            }
            continue;
        }
        if (hasInlineValue)
            return usage(QStringLiteral("%1 takes no value").arg(arg));
        if (arg == QLatin1String("-h") || arg == QLatin1String("--help"))
            o.help = true;
        else if (arg == QLatin1String("--version"))
            o.version = true;
        else if (arg == QLatin1String("--follow") || arg == QLatin1String("-f")) {
            o.follow = true;
            seen << QStringLiteral("--follow");
        } else if (arg == QLatin1String("--report")) {
            o.report = true;
            seen << arg;
        } else
            return usage(QStringLiteral("unknown option %1").arg(arg));
    }
    if (o.help || o.version)
        return o;
    if (o.command.isEmpty())
        return usage(QStringLiteral("no command given"));

    struct Spec {
        int minArgs;
        int maxArgs;
        QStringList options;
        const char *synopsis;
    };
    static const QMap<QString, Spec> specs{
        {QStringLiteral("run"), {1, 1, {QStringLiteral("--follow"), QStringLiteral("--report"), QStringLiteral("--name")},
                                 "run CONFIG [--follow] [--report] [--name NAME]"}},
        {QStringLiteral("status"), {0, 1, {}, "status [RUN]"}},
        {QStringLiteral("list"), {0, 0, {}, "list"}},
        {QStringLiteral("stop"), {1, 1, {}, "stop RUN"}},
        {QStringLiteral("report"), {1, 1, {}, "report RUN"}},
        {QStringLiteral("validate"), {1, 1, {}, "validate CONFIG"}},
        {QStringLiteral("plugins"), {0, 0, {}, "plugins"}},
    };
    const auto spec = specs.constFind(o.command);
    if (spec == specs.constEnd())
        return usage(QStringLiteral("unknown command \"%1\"").arg(o.command));
    for (const QString &opt : std::as_const(seen)) {
        if (!spec->options.contains(opt))
            return usage(QStringLiteral("%1 is not an option of \"%2\"").arg(opt, o.command));
    }
    if (o.positional.size() < spec->minArgs || o.positional.size() > spec->maxArgs)
        return usage(QStringLiteral("usage: userfluxctl %1").arg(QLatin1String(spec->synopsis)));
    return o;
}

// ---------------------------------------------------------------------------------------------------------------

Ctl::Ctl(QObject *parent) : QObject(parent) {}

Ctl::~Ctl() = default;

QCoro::Task<int> Ctl::run(QStringList arguments)
{
    Result<CtlOptions> parsed = parseCtlArguments(arguments);
    if (!parsed) {
        errLine(QStringLiteral("userfluxctl: ") + parsed.error().message);
        errLine(QStringLiteral("Try 'userfluxctl --help'."));
        co_return ExitUsage;
    }
    CtlOptions options = *parsed;
    if (options.help) {
        writeTo(stdout, usageText());
        co_return ExitOk;
    }
    if (options.version) {
        outLine(QStringLiteral("userfluxctl %1").arg(QStringLiteral(USERFLUX_VERSION)));
        co_return ExitOk;
    }
    m_runsRoot = RunStore::resolveRoot(options.runsDir);
    const QString &c = options.command;
    if (c == QLatin1String("validate"))
        co_return cmdValidate(options);
    if (c == QLatin1String("run"))
        co_return co_await cmdRun(options);
    if (c == QLatin1String("status"))
        co_return co_await cmdStatus(options);
    if (c == QLatin1String("list"))
        co_return co_await cmdList(options);
    if (c == QLatin1String("stop"))
        co_return co_await cmdStop(options);
    if (c == QLatin1String("report"))
        co_return co_await cmdReport(options);
    if (c == QLatin1String("plugins"))
        co_return co_await cmdPlugins(options);
    co_return fail(ExitUsage, QStringLiteral("unknown command \"%1\"").arg(c));
}

QCoro::Task<bool> Ctl::connectDaemon(CtlOptions options)
{
    m_client = std::make_unique<Control::Client>(m_runsRoot);
    m_client->setPluginDirs(options.pluginDirs);
    QObject::connect(m_client.get(), &Control::Client::daemonStarted, this,
                     [](qint64, const QString &, const QString &message) { errLine(message); });
    Result<void> r = co_await m_client->ensureDaemon();
    if (!r) {
        errLine(QStringLiteral("userfluxctl: cannot reach or start userfluxd for runs root %1: %2")
                    .arg(m_runsRoot, r.error().message));
        co_return false;
    }
    co_return true;
}

int Ctl::cmdValidate(const CtlOptions &options)
{
    const QString path = options.positional.constFirst();
    Result<json> config = readJsonFile(path);
    if (!config)
        return fail(ExitUsage, config.error().message);
    if (!config->is_object())
        return fail(ExitUsage, QStringLiteral("%1: the config must be a JSON object").arg(path));
    PluginHost host(options.pluginDirs);
    const ConfigErrors errors = validateConfig(*config, host, QFileInfo(path).absolutePath());
    if (!errors.isEmpty()) {
        for (const ConfigError &e : errors)
            errLine(QStringLiteral("%1: %2: %3").arg(path, e.path, e.message));
        return ExitUsage;
    }
    QString name = str(*config, "name");
    if (name.isEmpty())
        name = QFileInfo(path).completeBaseName();
    QString plan;
    if (Result<LoadPlan> p = parseLoadPlan((*config)["load"]); p)
        plan = planSummary(*p);
    outLine(QStringLiteral("config ok: %1%2").arg(name, plan.isEmpty() ? QString() : QStringLiteral(", ") + plan));
    return ExitOk;
}

QCoro::Task<int> Ctl::cmdRun(CtlOptions options)
{
    const QString path = options.positional.constFirst();
    Result<json> read = readJsonFile(path);
    if (!read)
        co_return fail(ExitUsage, read.error().message);
    json config = *read;
    if (!config.is_object())
        co_return fail(ExitUsage, QStringLiteral("%1: the config must be a JSON object").arg(path));
    if (!options.name.isEmpty())
        config["name"] = options.name.toStdString();
    const QString configDir = QFileInfo(path).absolutePath();

    if (!(co_await connectDaemon(options)))
        co_return ExitEnvironment;

    Result<json> created = co_await m_client->createRun(config, configDir);
    if (!created) {
        if (created.error().code == QLatin1String("invalid_config")) {
            for (const QString &line : Control::Client::configErrorLines(created.error()))
                errLine(QStringLiteral("%1: %2").arg(path, line));
            co_return ExitUsage;
        }
        co_return fail(exitCodeFor(created.error()), created.error().message);
    }
    const QString runId = str(*created, "run_id");
    const QString state = str(*created, "state");
    if (state == QLatin1String("failed"))
        co_return fail(ExitFailed, QStringLiteral("run %1 failed to start: %2").arg(runId, str(*created, "message")));

    if (!options.follow && !options.report) {
        outLine(runId);
        co_return ExitOk;
    }
    outLine(QStringLiteral("run %1 started (%2)").arg(runId, str(*created, "run_dir")));
    int code = co_await follow(runId, config);
    if (options.report) {
        const QString runDir = RunStore(m_runsRoot).runDir(runId);
        if (!QFileInfo::exists(runDir + QStringLiteral("/summary.json"))) {
            errLine(QStringLiteral("userfluxctl: run %1 has no summary.json: no report").arg(runId));
            if (code == ExitOk)
                code = ExitFailed;
        } else {
            const int reportCode = co_await generateReport(runDir, true);
            if (code == ExitOk)
                code = reportCode;
        }
    }
    co_return code;
}

QCoro::Task<int> Ctl::follow(QString runId, json config)
{
    const double planned = plannedSeconds(config);
    const bool tty = ::isatty(STDOUT_FILENO) == 1;
    InterruptGuard guard;
    bool stopSent = false;
    bool hardStopSent = false;
    int failures = 0;
    json status;
    json live;
    QElapsedTimer sinceLine;
    bool printedAny = false;
    bool lineOpen = false; // a \r progress line is on screen

    for (;;) {
        Result<json> r = co_await m_client->getRun(runId);
        if (!r) {
            if (exitCodeFor(r.error()) != ExitEnvironment || ++failures > 20) {
                if (lineOpen)
                    writeTo(stdout, QStringLiteral("\n"));
                co_return fail(exitCodeFor(r.error()) == ExitEnvironment ? ExitEnvironment : ExitFailed,
                               QStringLiteral("lost track of run %1: %2").arg(runId, r.error().message));
            }
        } else {
            failures = 0;
            status = (*r)["status"];
            live = (*r)["live"];
            if (RunStore::isTerminalState(str(status, "state")))
                break;
            const QString state = str(status, "state");
            QString line = QStringLiteral("[%1%2] ")
                               .arg(clock(num(live, "elapsed_s")))
                               .arg(planned > 0 ? QStringLiteral(" / ") + clock(planned) : QString());
            if (stopSent)
                line += QStringLiteral("stopping | ");
            if (state == QLatin1String("created") || num(live, "elapsed_s") <= 0)
                line += QStringLiteral("starting...");
            else
                line += liveFigures(live);
            if (tty) {
                writeTo(stdout, QStringLiteral("\r\x1b[K") + line);
                lineOpen = true;
            } else if (!printedAny || sinceLine.elapsed() >= 5000) {
                outLine(line);
                sinceLine.restart();
                printedAny = true;
            }
        }

        // Wait ~0.5 s, looking at Ctrl-C every 100 ms.
        for (int i = 0; i < 5; ++i) {
            if (g_interrupts >= 3 || (g_interrupts == 1 && !stopSent) || (g_interrupts == 2 && !hardStopSent))
                break;
            co_await QCoro::sleepFor(100ms);
        }
        if (g_interrupts == 2 && !hardStopSent) {
            // Second Ctrl-C: stop at once (requests in flight are interrupted); keep following to the end.
            hardStopSent = true;
            if (lineOpen)
                writeTo(stdout, QStringLiteral("\n"));
            lineOpen = false;
            Result<json> stopped = co_await m_client->stopRun(runId);
            if (stopped)
                errLine(QStringLiteral("userfluxctl: stopping run %1 at once (Ctrl-C again to stop waiting)").arg(runId));
            else
                errLine(QStringLiteral("userfluxctl: cannot stop run %1: %2").arg(runId, stopped.error().message));
        }
        if (g_interrupts >= 3) {
            if (lineOpen)
                writeTo(stdout, QStringLiteral("\n"));
            errLine(QStringLiteral("userfluxctl: not waiting any longer; run %1 is still stopping (see: userfluxctl "
                                   "status %1)")
                        .arg(runId));
            co_return ExitAborted;
        }
        if (g_interrupts == 1 && !stopSent) {
            stopSent = true;
            if (lineOpen)
                writeTo(stdout, QStringLiteral("\n"));
            lineOpen = false;
            Result<json> stopped = co_await m_client->stopRun(runId);
            if (stopped)
                errLine(QStringLiteral("userfluxctl: stopping run %1 gracefully (Ctrl-C again to stop at once)").arg(runId));
            else
                errLine(QStringLiteral("userfluxctl: cannot stop run %1: %2").arg(runId, stopped.error().message));
        }
    }
    if (lineOpen)
        writeTo(stdout, QStringLiteral("\r\x1b[K"));
    co_return co_await printResult(runId, status, live, stopSent);
}

QCoro::Task<int> Ctl::printResult(QString runId, json status, json live, bool interrupted)
{
    const QString state = str(status, "state");
    Result<json> summaryResult = co_await m_client->runSummary(runId);
    const json summary = summaryResult ? *summaryResult : json::object();
    const bool hasSummary = summaryResult.ok();

    double duration = -1;
    if (hasSummary && summary.contains("run"))
        duration = num(summary["run"], "duration_s", -1);
    if (duration < 0)
        duration = secondsBetween(str(status, "started_at"), str(status, "ended_at"));

    QString head = QStringLiteral("run %1 %2").arg(runId, state);
    if (duration >= 0)
        head += QStringLiteral(" in %1").arg(humanDuration(duration));
    if (!status["exit_code"].is_null() && status["exit_code"].is_number())
        head += QStringLiteral(" (exit code %1)").arg(status["exit_code"].get<qint64>());
    outLine(head);
    const QString message = str(status, "message");
    if (!message.isEmpty())
        outLine(QStringLiteral("  message     %1").arg(message));

    bool thresholdFailed = false;
    if (hasSummary) {
        const json totals = summary.value("totals", json::object());
        QString errorsText = QStringLiteral("errors %1 (%2)")
                                 .arg(static_cast<qint64>(num(totals, "errors")))
                                 .arg(percent(num(totals, "error_rate")));
        const json kinds = summary.value("errors_by_kind", json::object());
        QStringList kindParts;
        if (kinds.is_object()) {
            for (auto it = kinds.begin(); it != kinds.end(); ++it) {
                if (it->is_number() && it->get<double>() > 0)
                    kindParts << QStringLiteral("%1 %2").arg(QString::fromStdString(it.key())).arg(it->get<qint64>());
            }
        }
        if (!kindParts.isEmpty())
            errorsText += QStringLiteral(": ") + kindParts.join(QStringLiteral(", "));
        QString requests = QStringLiteral("%1, ok %2, %3")
                               .arg(static_cast<qint64>(num(totals, "requests")))
                               .arg(static_cast<qint64>(num(totals, "ok")))
                               .arg(errorsText);
        if (num(totals, "interrupted") > 0)
            requests += QStringLiteral(", interrupted %1").arg(static_cast<qint64>(num(totals, "interrupted")));
        outLine(QStringLiteral("  requests    %1").arg(requests));
        outLine(QStringLiteral("  throughput  %1 req/s").arg(number(num(totals, "throughput_rps"))));
        const json lat = summary.value("latency_ms", json());
        if (lat.is_object()) {
            outLine(QStringLiteral("  latency     p50 %1  p90 %2  p95 %3  p99 %4  max %5 ms")
                        .arg(number(num(lat, "p50")), number(num(lat, "p90")), number(num(lat, "p95")),
                             number(num(lat, "p99")), number(num(lat, "max"))));
        }
        const json checks = summary.value("checks", json::array());
        if (checks.is_array() && !checks.empty()) {
            qint64 passes = 0, fails = 0;
            for (const json &c : checks) {
                passes += static_cast<qint64>(num(c, "passes"));
                fails += static_cast<qint64>(num(c, "fails"));
            }
            outLine(QStringLiteral("  checks      %1 passed (%2 of %3)")
                        .arg(percent(passes + fails > 0 ? double(passes) / double(passes + fails) : 0.0))
                        .arg(passes)
                        .arg(passes + fails));
            for (const json &c : checks) {
                const qint64 p = static_cast<qint64>(num(c, "passes")), f = static_cast<qint64>(num(c, "fails"));
                outLine(QStringLiteral("    %1  %2: %3  %4/%5")
                            .arg(f == 0 ? QStringLiteral("ok  ") : QStringLiteral("FAIL"), str(c, "step"), str(c, "name"))
                            .arg(p)
                            .arg(p + f));
            }
        }
        const json thresholds = summary.value("thresholds", json::array());
        if (thresholds.is_array() && !thresholds.empty()) {
            int failed = 0;
            for (const json &t : thresholds)
                failed += t.value("ok", false) ? 0 : 1;
            thresholdFailed = failed > 0;
            outLine(QStringLiteral("  thresholds  %1").arg(failed ? QStringLiteral("%1 of %2 failed").arg(failed).arg(thresholds.size())
                                                                  : QStringLiteral("all %1 passed").arg(thresholds.size())));
            for (const json &t : thresholds) {
                const QString observed = hasNumber(t, "observed") ? QString::number(num(t, "observed"), 'g', 6)
                                                                  : QStringLiteral("no data");
                outLine(QStringLiteral("    %1  %2: %3 (observed %4)")
                            .arg(t.value("ok", false) ? QStringLiteral("ok  ") : QStringLiteral("FAIL"),
                                 str(t, "metric"), str(t, "expr"), observed));
            }
        }
    } else {
        outLine(QStringLiteral("  requests    %1, ok %2, errors %3 (%4)  [from the live record: no summary.json]")
                    .arg(static_cast<qint64>(num(live, "requests")))
                    .arg(static_cast<qint64>(num(live, "ok")))
                    .arg(static_cast<qint64>(num(live, "errors")))
                    .arg(percent(num(live, "error_rate"))));
    }
    outLine(QStringLiteral("  run dir     %1").arg(RunStore(m_runsRoot).runDir(runId)));

    const bool exit99 = status.contains("exit_code") && status["exit_code"].is_number_integer() &&
                        status["exit_code"].get<int>() == ExitThresholds;
    if (interrupted)
        co_return ExitAborted;
    // A run stopped by an abort_on_fail threshold is aborted with the agent's exit code 99: a threshold failure.
    if (state == QLatin1String("aborted"))
        co_return exit99 ? ExitThresholds : ExitAborted;
    if (state == QLatin1String("failed"))
        co_return ExitFailed;
    if (state == QLatin1String("finished"))
        co_return exit99 || thresholdFailed ? ExitThresholds : ExitOk;
    co_return ExitFailed;
}

QCoro::Task<int> Ctl::cmdStatus(CtlOptions options)
{
    if (!options.positional.isEmpty() && !isValidRunId(options.positional.constFirst()))
        co_return fail(ExitUsage, QStringLiteral("invalid run id \"%1\"").arg(options.positional.constFirst()));
    if (!(co_await connectDaemon(options)))
        co_return ExitEnvironment;

    if (!options.positional.isEmpty()) {
        const QString runId = options.positional.constFirst();
        Result<json> r = co_await m_client->getRun(runId);
        if (!r)
            co_return fail(exitCodeFor(r.error()), r.error().message);
        const json status = (*r)["status"];
        const json live = (*r)["live"];
        const QString state = str(status, "state");
        QString stateText = state;
        if (status.contains("agent_pid") && status["agent_pid"].is_number_integer() && !RunStore::isTerminalState(state))
            stateText += QStringLiteral(" (agent pid %1)").arg(status["agent_pid"].get<qint64>());
        if (status.contains("exit_code") && status["exit_code"].is_number_integer())
            stateText += QStringLiteral(" (exit code %1)").arg(status["exit_code"].get<qint64>());
        outLine(QStringLiteral("run         %1").arg(runId));
        if (!str(*r, "name").isEmpty())
            outLine(QStringLiteral("name        %1").arg(str(*r, "name")));
        outLine(QStringLiteral("state       %1").arg(stateText));
        outLine(QStringLiteral("created     %1").arg(str(status, "created_at")));
        if (!str(status, "started_at").isEmpty())
            outLine(QStringLiteral("started     %1").arg(str(status, "started_at")));
        if (!str(status, "ended_at").isEmpty())
            outLine(QStringLiteral("ended       %1").arg(str(status, "ended_at")));
        if (!str(status, "message").isEmpty())
            outLine(QStringLiteral("message     %1").arg(str(status, "message")));
        if (RunStore::isTerminalState(state) && (*r).value("has_summary", false)) {
            // An ended run: its final figures (the live record counts finished requests only).
            outLine(QString());
            co_await printResult(runId, status, live, false);
            co_return ExitOk;
        }
        outLine(QStringLiteral("elapsed     %1").arg(clock(num(live, "elapsed_s"))));
        outLine(QStringLiteral("live        %1").arg(liveFigures(live)));
        outLine(QStringLiteral("run dir     %1").arg(str(*r, "run_dir")));
        co_return ExitOk;
    }

    Result<json> list = co_await m_client->listRuns();
    if (!list)
        co_return fail(exitCodeFor(list.error()), list.error().message);
    QList<QStringList> rows{{QStringLiteral("RUN ID"), QStringLiteral("STATE"), QStringLiteral("ELAPSED"),
                             QStringLiteral("NAME"), QStringLiteral("LIVE")}};
    for (const json &item : (*list)["runs"]) {
        const QString state = str(item, "state");
        if (state != QLatin1String("created") && state != QLatin1String("running"))
            continue;
        const QString runId = str(item, "run_id");
        Result<json> r = co_await m_client->getRun(runId);
        const json live = r ? (*r)["live"] : json::object();
        rows.append({runId, state, clock(num(live, "elapsed_s")), str(item, "name"), liveFigures(live)});
    }
    if (rows.size() == 1)
        outLine(QStringLiteral("no active runs in %1").arg(m_runsRoot));
    else
        printTable(rows);
    co_return ExitOk;
}

QCoro::Task<int> Ctl::cmdList(CtlOptions options)
{
    if (!(co_await connectDaemon(options)))
        co_return ExitEnvironment;
    Result<json> list = co_await m_client->listRuns();
    if (!list)
        co_return fail(exitCodeFor(list.error()), list.error().message);
    QList<QStringList> rows{
        {QStringLiteral("RUN ID"), QStringLiteral("STATE"), QStringLiteral("CREATED"), QStringLiteral("NAME")}};
    for (const json &item : (*list)["runs"])
        rows.append({str(item, "run_id"), str(item, "state"), str(item, "created_at"), str(item, "name")});
    if (rows.size() == 1)
        outLine(QStringLiteral("no runs in %1").arg(m_runsRoot));
    else
        printTable(rows);
    co_return ExitOk;
}

QCoro::Task<int> Ctl::cmdStop(CtlOptions options)
{
    const QString runId = options.positional.constFirst();
    if (!isValidRunId(runId))
        co_return fail(ExitUsage, QStringLiteral("invalid run id \"%1\"").arg(runId));
    if (!(co_await connectDaemon(options)))
        co_return ExitEnvironment;
    Result<json> r = co_await m_client->stopRun(runId);
    if (!r)
        co_return fail(exitCodeFor(r.error()), r.error().message);
    outLine(QStringLiteral("stop requested for run %1").arg(runId));
    co_return ExitOk;
}

QCoro::Task<int> Ctl::cmdPlugins(CtlOptions options)
{
    if (!(co_await connectDaemon(options)))
        co_return ExitEnvironment;
    Result<json> r = co_await m_client->plugins();
    if (!r)
        co_return fail(exitCodeFor(r.error()), r.error().message);
    QList<QStringList> rows{{QStringLiteral("ID"), QStringLiteral("KIND"), QStringLiteral("VERSION"),
                             QStringLiteral("API"), QStringLiteral("STATUS")}};
    for (const json &p : (*r)["plugins"]) {
        const bool usable = p.value("usable", false);
        rows.append({str(p, "id"), str(p, "kind"), str(p, "version"),
                     QString::number(static_cast<qint64>(num(p, "api_version"))),
                     usable ? QStringLiteral("ok") : QStringLiteral("unusable: ") + str(p, "problem")});
    }
    if (rows.size() == 1) {
        QStringList dirs;
        for (const json &d : (*r)["searched_dirs"])
            dirs << QString::fromStdString(d.get<std::string>());
        outLine(QStringLiteral("no plugins found (searched: %1)").arg(dirs.join(QStringLiteral(", "))));
    } else {
        printTable(rows);
    }
    co_return ExitOk;
}

QCoro::Task<int> Ctl::cmdReport(CtlOptions options)
{
    const QString runId = options.positional.constFirst();
    if (!isValidRunId(runId))
        co_return fail(ExitUsage, QStringLiteral("invalid run id \"%1\"").arg(runId));
    // The report reads finished artifacts only: no daemon needed.
    RunStore store(m_runsRoot);
    if (!store.exists(runId))
        co_return fail(ExitFailed, QStringLiteral("no run %1 in %2").arg(runId, m_runsRoot));
    if (!QFileInfo::exists(store.runDir(runId) + QStringLiteral("/summary.json"))) {
        Result<json> status = store.readStatus(runId);
        const QString state = status ? str(*status, "state") : QStringLiteral("unknown");
        co_return fail(ExitFailed, QStringLiteral("run %1 has no summary.json (state %2): nothing to report on").arg(runId, state));
    }
    co_return co_await generateReport(store.runDir(runId), false);
}

QCoro::Task<int> Ctl::generateReport(QString runDir, bool quiet)
{
    const QString analytics = analyticsDir();
    if (!QFileInfo(analytics + QStringLiteral("/userflux_analytics")).isDir())
        co_return fail(ExitEnvironment, QStringLiteral("the analytics package is missing (looked in %1)").arg(analytics));

    // The interpreter: $USERFLUX_PYTHON, else the first of /usr/bin/python3 and python3 on PATH that can
    // import matplotlib.
    QStringList candidates;
    const QString fromEnv = qEnvironmentVariable("USERFLUX_PYTHON");
    if (!fromEnv.isEmpty()) {
        candidates << fromEnv;
    } else {
        candidates << QStringLiteral("/usr/bin/python3");
        const QString onPath = QStandardPaths::findExecutable(QStringLiteral("python3"));
        if (!onPath.isEmpty())
            candidates << onPath;
    }
    QString python;
    QStringList tried;
    QStringList seenCanonical;
    for (const QString &candidate : std::as_const(candidates)) {
        const QString canonical = QFileInfo(candidate).canonicalFilePath();
        if (!canonical.isEmpty() && seenCanonical.contains(canonical))
            continue;
        seenCanonical << canonical;
        tried << candidate;
        QProcess probe;
        probe.setProcessChannelMode(QProcess::MergedChannels);
        const QStringList probeArgs{QStringLiteral("-c"), QStringLiteral("import matplotlib")};
        const bool started = co_await qCoro(probe).start(candidate, probeArgs);
        if (!started)
            continue;
        const bool finished = co_await qCoro(probe).waitForFinished(30s);
        if (!finished) {
            probe.kill();
            probe.waitForFinished(1000);
            continue;
        }
        if (probe.exitStatus() == QProcess::NormalExit && probe.exitCode() == 0) {
            python = candidate;
            break;
        }
    }
    if (python.isEmpty())
        co_return fail(ExitEnvironment,
                       QStringLiteral("matplotlib is not available for any Python 3 (tried %1); install "
                                      "python3-matplotlib or set USERFLUX_PYTHON")
                           .arg(tried.isEmpty() ? QStringLiteral("no python3 found") : tried.join(QStringLiteral(", "))));

    QProcess process;
    QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
    const QString pythonPath = env.value(QStringLiteral("PYTHONPATH"));
    env.insert(QStringLiteral("PYTHONPATH"), pythonPath.isEmpty() ? analytics : analytics + QLatin1Char(':') + pythonPath);
    env.insert(QStringLiteral("MPLBACKEND"), QStringLiteral("Agg"));
    process.setProcessEnvironment(env);
    process.setProcessChannelMode(QProcess::ForwardedErrorChannel);
    const QStringList args{QStringLiteral("-m"), QStringLiteral("userflux_analytics"), QStringLiteral("report"), runDir};
    const bool started = co_await qCoro(process).start(python, args);
    if (!started)
        co_return fail(ExitEnvironment, QStringLiteral("cannot start %1: %2").arg(python, process.errorString()));
    const bool finished = co_await qCoro(process).waitForFinished(10min);
    if (!finished) {
        process.kill();
        process.waitForFinished(2000);
        co_return fail(ExitFailed, QStringLiteral("the report of %1 took longer than 10 minutes: stopped").arg(runDir));
    }
    const QString printed = QString::fromUtf8(process.readAllStandardOutput()).trimmed();
    if (process.exitStatus() != QProcess::NormalExit || process.exitCode() != 0) {
        const int code = process.exitStatus() == QProcess::NormalExit && process.exitCode() == ExitEnvironment
                             ? ExitEnvironment
                             : ExitFailed;
        co_return fail(code, QStringLiteral("the report of %1 failed (%2 exited with code %3)")
                                 .arg(runDir, python)
                                 .arg(process.exitCode()));
    }
    QString reportPath = printed.section(QLatin1Char('\n'), -1);
    if (reportPath.isEmpty())
        reportPath = runDir + QStringLiteral("/report.html");
    outLine(quiet ? QStringLiteral("  report      %1").arg(reportPath) : reportPath);
    co_return ExitOk;
}

} // namespace Userflux
