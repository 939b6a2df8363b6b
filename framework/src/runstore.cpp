#include "userflux/runstore.h"

#include "userflux/atomicfile.h"
#include "userflux/runid.h"

#include <QDateTime>
#include <QDir>
#include <QFile>
#include <QFileInfo>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sys/stat.h>
#include <sys/types.h>

namespace Userflux {

namespace {

using json = nlohmann::json;

// Names the run contract gives a meaning to at the top of a run dir: a data file must not overwrite them.
const QStringList &reservedNames()
{
    static const QStringList names{QStringLiteral("config.json"),     QStringLiteral("status.json"),
                                   QStringLiteral("summary.json"),    QStringLiteral("timeseries.ndjson"),
                                   QStringLiteral("samples.ndjson"),  QStringLiteral("logs.txt"),
                                   QStringLiteral("report.html")};
    return names;
}

Error invalidId(const QString &runId)
{
    return Error{QStringLiteral("invalid_run_id"),
                 QStringLiteral("invalid run id \"%1\": expected [A-Za-z0-9][A-Za-z0-9._-]{0,63}").arg(runId)};
}

// Checks one data file name as written in a config; returns the cleaned relative path or an error.
Result<QString> checkDataFileName(const QString &name)
{
    auto bad = [&](const QString &why) {
        return Error{QStringLiteral("invalid_data_file"), QStringLiteral("data file \"%1\": %2").arg(name, why)};
    };
    if (name.trimmed().isEmpty())
        return bad(QStringLiteral("empty file name"));
    if (name.contains(QChar(0)))
        return bad(QStringLiteral("file name contains a NUL character"));
    if (QDir::isAbsolutePath(name) || name.startsWith(QLatin1Char('/')))
        return bad(QStringLiteral("absolute paths are refused; give a path relative to the config file's folder"));
    // Refuse ".." anywhere, even when cleaning would keep the path inside ("a/../b"): the copy keeps the
    // name as written, and a name that climbs is never what a self-contained run dir wants.
    const QStringList parts = name.split(QLatin1Char('/'), Qt::SkipEmptyParts);
    if (parts.contains(QStringLiteral("..")))
        return bad(QStringLiteral("\"..\" is refused: data files must stay inside the config file's folder"));
    const QString cleaned = QDir::cleanPath(name);
    if (cleaned.isEmpty() || cleaned == QLatin1String(".") || cleaned.startsWith(QLatin1String("../")))
        return bad(QStringLiteral("not a file inside the config file's folder"));
    if (reservedNames().contains(cleaned))
        return bad(QStringLiteral("the name is reserved for a run artifact"));
    return cleaned;
}

QByteArray dumpJson(const json &value)
{
    return QByteArray::fromStdString(value.dump(2)) + '\n';
}

} // namespace

// ---------------------------------------------------------------------------------------------------------------

json LiveFigures::toJson() const
{
    json j;
    j["elapsed_s"] = elapsedS;
    j["vus"] = vus;
    j["rps"] = rps;
    j["p95_ms"] = p95Ms < 0 ? json(nullptr) : json(p95Ms);
    j["requests"] = requests;
    j["ok"] = ok;
    j["errors"] = errors;
    j["error_rate"] = errorRate;
    return j;
}

LiveFigures LiveFigures::fromBuckets(const std::vector<json> &buckets)
{
    auto num = [](const json &obj, const char *key) -> double {
        const auto it = obj.find(key);
        return it != obj.end() && it->is_number() ? it->get<double>() : 0.0;
    };
    auto count = [](const json &obj, const char *key) -> qint64 {
        const auto it = obj.find(key);
        return it != obj.end() && it->is_number() ? static_cast<qint64>(it->get<double>()) : 0;
    };
    LiveFigures f;
    for (const json &b : buckets) {
        f.requests += count(b, "requests");
        f.ok += count(b, "ok");
        f.errors += count(b, "errors");
    }
    if (!buckets.empty()) {
        const json &last = buckets.back();
        f.elapsedS = num(last, "t_s") + num(last, "duration_s");
        f.vus = static_cast<int>(count(last, "vus"));
        f.rps = num(last, "throughput_rps");
        const auto lat = last.find("latency_ms");
        if (lat != last.end() && lat->is_object() && lat->contains("p95") && (*lat)["p95"].is_number())
            f.p95Ms = (*lat)["p95"].get<double>();
    }
    const qint64 finished = f.ok + f.errors;
    f.errorRate = finished > 0 ? double(f.errors) / double(finished) : 0.0;
    return f;
}

// ---------------------------------------------------------------------------------------------------------------

TimeseriesReader::TimeseriesReader(const QString &path) : m_path(path) {}

Result<void> TimeseriesReader::refresh()
{
    QFile file(m_path);
    if (!file.exists())
        return {};
    if (!file.open(QIODevice::ReadOnly))
        return Error{QStringLiteral("io"), QStringLiteral("cannot read %1: %2").arg(m_path, file.errorString())};
    if (file.size() < m_offset) { // replaced or truncated: start over
        m_offset = 0;
        m_buckets.clear();
        m_skipped = 0;
    }
    if (!file.seek(m_offset))
        return Error{QStringLiteral("io"), QStringLiteral("cannot read %1: %2").arg(m_path, file.errorString())};
    const QByteArray data = file.readAll();
    const qsizetype lastNewline = data.lastIndexOf('\n');
    if (lastNewline < 0)
        return {}; // nothing complete yet (a torn line waits for its end)
    qsizetype start = 0;
    while (start <= lastNewline) {
        const qsizetype end = data.indexOf('\n', start);
        const QByteArray line = data.mid(start, end - start).trimmed();
        start = end + 1;
        if (line.isEmpty())
            continue;
        json bucket = json::parse(line.constData(), line.constData() + line.size(), nullptr, false);
        if (bucket.is_discarded() || !bucket.is_object()) {
            ++m_skipped;
            continue;
        }
        m_buckets.push_back(std::move(bucket));
    }
    m_offset += lastNewline + 1;
    return {};
}

// ---------------------------------------------------------------------------------------------------------------

RunStore::RunStore(const QString &root) : m_root(QDir::cleanPath(root)) {}

QString RunStore::resolveRoot(const QString &cliValue)
{
    QString value = cliValue;
    if (value.isEmpty())
        value = qEnvironmentVariable("USERFLUX_RUNS_DIR");
    if (value.isEmpty())
        value = QStringLiteral("runs");
    return QDir::cleanPath(QDir::current().absoluteFilePath(value));
}

QString RunStore::now()
{
    return QDateTime::currentDateTimeUtc().toString(Qt::ISODateWithMs);
}

bool RunStore::isTerminalState(const QString &state)
{
    return state == QLatin1String("finished") || state == QLatin1String("failed") ||
           state == QLatin1String("aborted");
}

json RunStore::initialStatus(const QString &runId)
{
    return json{{"schema", StatusSchemaId},
                {"run_id", runId.toStdString()},
                {"state", "created"},
                {"created_at", now().toStdString()},
                {"started_at", nullptr},
                {"ended_at", nullptr},
                {"agent_pid", nullptr},
                {"message", ""},
                {"exit_code", nullptr}};
}

QString RunStore::runDir(const QString &runId) const
{
    if (!isValidRunId(runId))
        return {};
    return m_root + QLatin1Char('/') + runId;
}

bool RunStore::exists(const QString &runId) const
{
    const QString dir = runDir(runId);
    return !dir.isEmpty() && QFileInfo(dir).isDir();
}

QString RunStore::timeseriesPath(const QString &runId) const
{
    const QString dir = runDir(runId);
    return dir.isEmpty() ? QString() : dir + QStringLiteral("/timeseries.ndjson");
}

Result<QString> RunStore::createRun(const json &config, const QString &configDir, const QStringList &dataFiles)
{
    if (!config.is_object())
        return Error{QStringLiteral("invalid_config"), QStringLiteral("the config must be a JSON object")};

    // Check every data file before creating anything.
    QStringList files;
    for (const QString &name : dataFiles) {
        Result<QString> cleaned = checkDataFileName(name);
        if (!cleaned)
            return cleaned.error();
        if (files.contains(*cleaned))
            continue;
        const QString source = QDir(configDir).absoluteFilePath(*cleaned);
        const QFileInfo info(source);
        if (!info.exists() || !info.isFile() || !info.isReadable())
            return Error{QStringLiteral("invalid_data_file"),
                         QStringLiteral("data file \"%1\": %2 is not a readable file").arg(name, source)};
        files.append(*cleaned);
    }

    if (!QDir().mkpath(m_root))
        return Error{QStringLiteral("io"), QStringLiteral("cannot create the runs root %1").arg(m_root)};

    // mkdir(2) fails with EEXIST when the id is taken (another run created the same second with the same
    // random suffix, by this or another process): try another id.
    QString runId;
    for (int attempt = 0; attempt < 50 && runId.isEmpty(); ++attempt) {
        const QString candidate = generateRunId();
        const QByteArray path = QFile::encodeName(m_root + QLatin1Char('/') + candidate);
        if (::mkdir(path.constData(), 0755) == 0)
            runId = candidate;
        else if (errno != EEXIST)
            return Error{QStringLiteral("io"), QStringLiteral("cannot create %1: %2")
                                                   .arg(QFile::decodeName(path), QString::fromLocal8Bit(std::strerror(errno)))};
    }
    if (runId.isEmpty())
        return Error{QStringLiteral("io"), QStringLiteral("cannot find a free run id in %1").arg(m_root)};

    const QString dir = runDir(runId);
    auto fail = [&](const Error &e) -> Result<QString> {
        QDir(dir).removeRecursively();
        return e;
    };

    for (const QString &rel : files) {
        const QString source = QDir(configDir).absoluteFilePath(rel);
        const QString target = dir + QLatin1Char('/') + rel;
        if (!QDir().mkpath(QFileInfo(target).absolutePath()))
            return fail(Error{QStringLiteral("io"), QStringLiteral("cannot create the folder of %1").arg(target)});
        QFile in(source);
        if (!in.copy(target))
            return fail(Error{QStringLiteral("io"),
                              QStringLiteral("cannot copy data file %1 to %2: %3").arg(source, target, in.errorString())});
    }

    json stored = config;
    if (!stored.contains("schema"))
        stored["schema"] = "userflux.config/1";
    if (Result<void> w = writeFileAtomically(dir + QStringLiteral("/config.json"), dumpJson(stored)); !w)
        return fail(w.error());
    if (Result<void> w = writeFileAtomically(dir + QStringLiteral("/status.json"), dumpJson(initialStatus(runId))); !w)
        return fail(w.error());
    return runId;
}

Result<json> RunStore::readJson(const QString &runId, const char *file) const
{
    if (!isValidRunId(runId))
        return invalidId(runId);
    const QString path = runDir(runId) + QLatin1Char('/') + QLatin1String(file);
    QFile f(path);
    if (!f.exists())
        return Error{QStringLiteral("not_found"),
                     exists(runId) ? QStringLiteral("run %1 has no %2").arg(runId, QLatin1String(file))
                                   : QStringLiteral("no run %1 in %2").arg(runId, m_root)};
    if (!f.open(QIODevice::ReadOnly))
        return Error{QStringLiteral("io"), QStringLiteral("cannot read %1: %2").arg(path, f.errorString())};
    const QByteArray data = f.readAll();
    json value = json::parse(data.constData(), data.constData() + data.size(), nullptr, false);
    if (value.is_discarded() || !value.is_object())
        return Error{QStringLiteral("json"), QStringLiteral("%1 is not a JSON object").arg(path)};
    return value;
}

Result<json> RunStore::readStatus(const QString &runId) const
{
    return readJson(runId, "status.json");
}

Result<json> RunStore::readConfig(const QString &runId) const
{
    return readJson(runId, "config.json");
}

Result<json> RunStore::readSummary(const QString &runId) const
{
    return readJson(runId, "summary.json");
}

Result<void> RunStore::writeStatus(const QString &runId, const json &status)
{
    if (!isValidRunId(runId))
        return invalidId(runId);
    if (!exists(runId))
        return Error{QStringLiteral("not_found"), QStringLiteral("no run %1 in %2").arg(runId, m_root)};
    return writeFileAtomically(runDir(runId) + QStringLiteral("/status.json"), dumpJson(status));
}

Result<std::vector<json>> RunStore::readTimeseries(const QString &runId) const
{
    if (!isValidRunId(runId))
        return invalidId(runId);
    if (!exists(runId))
        return Error{QStringLiteral("not_found"), QStringLiteral("no run %1 in %2").arg(runId, m_root)};
    TimeseriesReader reader(timeseriesPath(runId));
    if (Result<void> r = reader.refresh(); !r)
        return r.error();
    return reader.buckets();
}

Result<void> RunStore::appendLog(const QString &runId, const QString &source, const QString &text)
{
    if (!isValidRunId(runId))
        return invalidId(runId);
    if (!exists(runId))
        return Error{QStringLiteral("not_found"), QStringLiteral("no run %1 in %2").arg(runId, m_root)};
    const QString stamp = now();
    QByteArray lines;
    for (QString line : text.split(QLatin1Char('\n'))) {
        if (line.endsWith(QLatin1Char('\r')))
            line.chop(1);
        lines += QStringLiteral("%1 [%2] %3\n").arg(stamp, source, line).toUtf8();
    }
    return appendToFile(runDir(runId) + QStringLiteral("/logs.txt"), lines);
}

QStringList RunStore::runIds() const
{
    QStringList ids;
    const QDir dir(m_root);
    for (const QString &name : dir.entryList(QDir::Dirs | QDir::NoDotAndDotDot | QDir::Hidden)) {
        if (isValidRunId(name))
            ids.append(name);
    }
    std::sort(ids.begin(), ids.end());
    return ids;
}

} // namespace Userflux
