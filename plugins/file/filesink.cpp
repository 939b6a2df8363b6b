#include "filesink.h"

#include <userflux/atomicfile.h>
#include <userflux/configcheck.h>

#include <QDir>

#include <cmath>

namespace Userflux::Plugins {

using nlohmann::json;

ConfigErrors FileSinkPlugin::validate(const json &sink, const QString &path) const
{
    ConfigErrors errors;
    ConfigChecker c(&errors);
    if (c.object(sink, path, {"plugin", "samples"}))
        c.boolean(sink, "samples", path, false);
    return errors;
}

Result<void> FileSink::open(const SinkContext &context)
{
    m_dir = context.runDir;
    m_samplesEnabled = context.sinkConfig.value("samples", false);
    if (m_samplesEnabled) {
        m_samples.setFileName(QDir(m_dir).filePath(QStringLiteral("samples.ndjson")));
        if (!m_samples.open(QIODevice::WriteOnly | QIODevice::Append))
            return Error{QStringLiteral("io"), QStringLiteral("cannot write %1: %2").arg(m_samples.fileName(), m_samples.errorString())};
        m_buffer.reserve(1 << 16);
    }
    return {};
}

void FileSink::fail(const QString &what)
{
    if (m_error.isEmpty())
        m_error = what;
}

namespace {

void appendNumber(QByteArray &out, double v)
{
    // Three decimals are the histogram's precision and keep lines short; never NaN.
    out += QByteArray::number(std::isfinite(v) ? std::round(v * 1000.0) / 1000.0 : 0.0, 'f', 3);
}

void appendString(QByteArray &out, const QString &s)
{
    out += QByteArray::fromStdString(json(s.toStdString()).dump());
}

} // namespace

void FileSink::samples(const std::vector<Sample> &batch)
{
    if (!m_samplesEnabled)
        return;
    // Hand-rolled serialisation: this runs once per request, nlohmann::json objects would dominate its cost.
    for (const Sample &s : batch) {
        m_buffer += "{\"schema\":\"userflux.sample/1\",\"t_s\":";
        appendNumber(m_buffer, s.tS);
        m_buffer += ",\"vu\":" + QByteArray::number(s.vu) + ",\"iter\":" + QByteArray::number(s.iter) + ",\"step\":";
        appendString(m_buffer, s.step);
        m_buffer += ",\"method\":";
        appendString(m_buffer, QString::fromLatin1(s.method));
        m_buffer += ",\"url\":";
        appendString(m_buffer, s.url);
        m_buffer += ",\"status\":" + (s.status > 0 ? QByteArray::number(s.status) : QByteArrayLiteral("null")) + ",\"latency_ms\":";
        appendNumber(m_buffer, s.latencyMs);
        m_buffer += ",\"ttfb_ms\":";
        appendNumber(m_buffer, s.ttfbMs);
        m_buffer += ",\"bytes_received\":" + QByteArray::number(s.bytesReceived) + ",\"proto\":";
        appendString(m_buffer, QString::fromLatin1(s.proto));
        m_buffer += ",\"outcome\":";
        const char *outcome = s.outcome == ErrorKind::None ? "ok" : s.outcome == ErrorKind::Interrupted ? "interrupted" : "error";
        m_buffer += '"';
        m_buffer += outcome;
        m_buffer += "\",\"error\":";
        if (s.outcome == ErrorKind::None || s.outcome == ErrorKind::Interrupted) {
            m_buffer += "null";
        } else {
            m_buffer += '"' + errorKindName(s.outcome).toLatin1() + '"';
            m_buffer += ",\"message\":";
            appendString(m_buffer, s.error);
        }
        m_buffer += "}\n";
        if (m_buffer.size() >= (1 << 16)) {
            if (m_samples.write(m_buffer) != m_buffer.size())
                fail(QStringLiteral("cannot write samples.ndjson: %1").arg(m_samples.errorString()));
            m_buffer.clear();
        }
    }
    // Each batch ends on a whole line on disk.
    if (!m_buffer.isEmpty()) {
        if (m_samples.write(m_buffer) != m_buffer.size())
            fail(QStringLiteral("cannot write samples.ndjson: %1").arg(m_samples.errorString()));
        m_buffer.clear();
    }
    m_samples.flush();
}

void FileSink::timeseries(const json &bucket)
{
    const auto r = appendToFile(QDir(m_dir).filePath(QStringLiteral("timeseries.ndjson")),
                                QByteArray::fromStdString(bucket.dump()) + '\n');
    if (!r)
        fail(r.error().message);
}

void FileSink::summary(const json &summary, bool)
{
    const auto r = writeFileAtomically(QDir(m_dir).filePath(QStringLiteral("summary.json")),
                                       QByteArray::fromStdString(summary.dump(2)) + '\n');
    if (!r)
        fail(r.error().message);
}

Result<void> FileSink::close()
{
    if (m_samples.isOpen()) {
        m_samples.flush();
        m_samples.close();
    }
    if (!m_error.isEmpty())
        return Error{QStringLiteral("io"), m_error};
    return {};
}

} // namespace Userflux::Plugins
