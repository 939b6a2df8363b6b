#pragma once
#include <userflux/plugin.h>

#include <QFile>
#include <QObject>

namespace Userflux::Plugins {

// The file sink: writes the run contract into the run directory.
// - summary.json: rewritten atomically (partial every few seconds, then final);
// - timeseries.ndjson: one bucket appended per second, whole lines only;
// - samples.ndjson (when "samples": true): one line per request, through a buffered writer flushed once per batch.
class FileSink final : public ISink {
public:
    Result<void> open(const SinkContext &context) override;
    bool wantsSamples() const override { return m_samplesEnabled; }
    void samples(const std::vector<Sample> &batch) override;
    void timeseries(const nlohmann::json &bucket) override;
    void summary(const nlohmann::json &summary, bool final) override;
    Result<void> close() override;

private:
    void fail(const QString &what);
    QString m_dir;
    bool m_samplesEnabled = false;
    QFile m_samples;
    QByteArray m_buffer;
    QString m_error;
};

class FileSinkPlugin : public QObject, public ISinkPlugin {
    Q_OBJECT
    Q_PLUGIN_METADATA(IID UserfluxSinkPlugin_iid FILE "file.json")
    Q_INTERFACES(Userflux::ISinkPlugin)
public:
    ConfigErrors validate(const nlohmann::json &sink, const QString &path) const override;
    std::unique_ptr<ISink> create() override { return std::make_unique<FileSink>(); }
};

} // namespace Userflux::Plugins
