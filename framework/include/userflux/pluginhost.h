#pragma once
#include "userflux/plugin.h"
#include "userflux/result.h"

#include <QHash>
#include <QList>
#include <QString>
#include <QStringList>

class QPluginLoader;

namespace Userflux {

// What the host knows of one plugin file, from its metadata alone (the library is not loaded to learn it).
struct PluginInfo {
    QString id;           // e.g. "http"
    QString kind;         // "protocol" | "scenario" | "sink"
    QString version;      // the plugin's own version
    int apiVersion = 0;   // the SDK major version it was built against
    QString description;
    QString file;         // absolute path of the shared library
    bool usable = false;  // false: `problem` says why (bad metadata, incompatible api, failed to load, duplicate)
    QString problem;
};

// Finds plugins in folders, checks their metadata and loads them on first use. Owned by one thread (the
// control thread); the plugin objects it returns live as long as the host.
class PluginHost {
public:
    // Folders searched in order: entries of USERFLUX_PLUGIN_PATH (colon-separated), then `dirs`, then
    // defaultPluginDir(). A plugin id found twice keeps the first and marks the later one unusable.
    explicit PluginHost(const QStringList &dirs = {});
    ~PluginHost();
    PluginHost(const PluginHost &) = delete;
    PluginHost &operator=(const PluginHost &) = delete;

    // <folder of the running executable>/../lib/userflux/plugins (the same in the build and install trees).
    static QString defaultPluginDir();

    const QList<PluginInfo> &plugins() const { return m_plugins; }
    QStringList searchedDirs() const { return m_dirs; }

    // The plugin of that kind and id, loaded on first use. Errors: "not_found" (lists the ids available),
    // "unusable" (the metadata problem), "load_failed" (the loader's reason).
    Result<IProtocolPlugin *> protocol(const QString &id);
    Result<IScenarioPlugin *> scenario(const QString &id);
    Result<ISinkPlugin *> sink(const QString &id);

private:
    Result<QObject *> load(const QString &kind, const QString &id);
    void scan(const QString &dir);

    QStringList m_dirs;
    QList<PluginInfo> m_plugins;
    QHash<QString, QPluginLoader *> m_loaders; // key: kind + '/' + id
};

} // namespace Userflux
