#pragma once
#include "csv.h"

#include <userflux/duration.h>
#include <userflux/plugin.h>
#include <userflux/template.h>

#include <QObject>

#include <atomic>
#include <optional>

namespace Userflux::Plugins {

// One compiled check of a step.
struct Check {
    enum class Kind { Status, Header, BodyContains, JsonPointer, LatencyBelow };
    Kind kind = Kind::Status;
    QString name;                    // as reported in the summary
    QList<int> statuses;             // Status
    QByteArray header;               // Header
    std::optional<QString> equals;   // Header, JsonPointer (compared as JSON text for non-strings)
    std::optional<nlohmann::json> jsonEquals;
    bool exists = true;              // JsonPointer
    QByteArray contains;             // BodyContains, Header (substring)
    std::optional<Template> expected; // the compiled form of contains / header equals: may hold {{variables}}
    std::string pointer;             // JsonPointer
    std::chrono::microseconds below{0}; // LatencyBelow
};

struct Extraction {
    QString variable;
    enum class From { JsonPointer, Header } from = From::JsonPointer;
    std::string pointer;
    QByteArray header;
};

struct CompiledStep {
    QString name;
    QByteArray method;
    Template path;
    std::vector<std::pair<QByteArray, Template>> headers;
    std::optional<Template> rawBody;
    std::optional<nlohmann::json> jsonBody;                            // template strings inside
    std::vector<std::pair<nlohmann::json::json_pointer, Template>> jsonTemplates; // string leaves with variables
    std::vector<Check> checks;
    std::vector<Extraction> extractions;
    QList<int> expectStatus;
    std::optional<DurationRange> thinkTime;
    bool needsBody = false;
};

class StepsScenario final : public IScenario {
public:
    std::unique_ptr<IVuScript> createVu(int vu) override;
    QStringList endpoints() const override;

    std::vector<CompiledStep> steps;
    std::optional<DurationRange> thinkTime;
    std::optional<CsvTable> data;
    enum class DataMode { PerVu, Sequential, Random } dataMode = DataMode::PerVu;
    std::atomic<quint64> sequence{0};
};

class StepsScenarioPlugin : public QObject, public IScenarioPlugin {
    Q_OBJECT
    Q_PLUGIN_METADATA(IID UserfluxScenarioPlugin_iid FILE "steps.json")
    Q_INTERFACES(Userflux::IScenarioPlugin)
public:
    ConfigErrors validate(const nlohmann::json &scenario, const QString &baseDir) const override;
    QStringList dataFiles(const nlohmann::json &scenario) const override;
    QStringList endpoints(const nlohmann::json &scenario) const override;
    Result<std::shared_ptr<IScenario>> create(const ScenarioOptions &options) override;

    // Compiles (and validates) a scenario section; `errors` gets every problem.
    static std::shared_ptr<StepsScenario> compile(const nlohmann::json &scenario, const QString &baseDir, ConfigErrors *errors);
};

} // namespace Userflux::Plugins
