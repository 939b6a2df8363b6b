#include "userflux/pluginhost.h"

#include <QCoreApplication>
#include <QDir>
#include <QFileInfo>
#include <QJsonObject>
#include <QLibrary>
#include <QPluginLoader>

namespace Userflux {

namespace {

QString iidForKind(const QString &kind)
{
    if (kind == QLatin1String("protocol"))
        return QStringLiteral(UserfluxProtocolPlugin_iid);
    if (kind == QLatin1String("scenario"))
        return QStringLiteral(UserfluxScenarioPlugin_iid);
    if (kind == QLatin1String("sink"))
        return QStringLiteral(UserfluxSinkPlugin_iid);
    return {};
}

} // namespace

PluginHost::PluginHost(const QStringList &dirs)
{
    const QString env = qEnvironmentVariable("USERFLUX_PLUGIN_PATH");
    for (const QString &d : env.split(QLatin1Char(':'), Qt::SkipEmptyParts))
        m_dirs << QDir(d).absolutePath();
    for (const QString &d : dirs)
        m_dirs << QDir(d).absolutePath();
    m_dirs << defaultPluginDir();
    m_dirs.removeDuplicates();
    for (const QString &d : std::as_const(m_dirs))
        scan(d);
}

PluginHost::~PluginHost()
{
    // Plugin instances are owned by their loaders; unloading a library whose objects may still be referenced
    // by queued events is unsafe, so libraries stay mapped until the process exits (Qt does the same).
    qDeleteAll(m_loaders);
}

QString PluginHost::defaultPluginDir()
{
    return QDir::cleanPath(QCoreApplication::applicationDirPath() + QStringLiteral("/../lib/userflux/plugins"));
}

void PluginHost::scan(const QString &dir)
{
    const QDir d(dir);
    if (!d.exists())
        return;
    const QFileInfoList files = d.entryInfoList(QDir::Files, QDir::Name);
    for (const QFileInfo &fi : files) {
        if (!QLibrary::isLibrary(fi.fileName()))
            continue;
        PluginInfo info;
        info.file = fi.absoluteFilePath();
        // Metadata first: QPluginLoader::metaData() reads the embedded JSON without loading the library.
        QPluginLoader loader(info.file);
        const QJsonObject meta = loader.metaData();
        if (meta.isEmpty()) {
            info.id = fi.baseName();
            info.problem = QStringLiteral("not a Qt plugin (no metadata)");
            m_plugins << info;
            continue;
        }
        const QString iid = meta.value(QLatin1String("IID")).toString();
        const QJsonObject md = meta.value(QLatin1String("MetaData")).toObject();
        info.id = md.value(QLatin1String("id")).toString();
        info.kind = md.value(QLatin1String("kind")).toString();
        info.version = md.value(QLatin1String("version")).toString();
        info.apiVersion = md.value(QLatin1String("api_version")).toInt(0);
        info.description = md.value(QLatin1String("description")).toString();
        if (info.id.isEmpty())
            info.id = fi.baseName();
        const QString expectedIid = iidForKind(info.kind);
        if (info.id.isEmpty() || expectedIid.isEmpty()) {
            info.problem = QStringLiteral("metadata lacks a valid \"id\" or \"kind\" (protocol, scenario, sink)");
        } else if (info.apiVersion != PluginApiVersion) {
            info.problem = QStringLiteral("built for plugin API %1, this Userflux provides API %2")
                               .arg(info.apiVersion)
                               .arg(PluginApiVersion);
        } else if (iid != expectedIid) {
            info.problem = QStringLiteral("interface id %1 does not match %2").arg(iid, expectedIid);
        } else {
            const bool duplicate = std::any_of(m_plugins.cbegin(), m_plugins.cend(), [&](const PluginInfo &p) {
                return p.usable && p.kind == info.kind && p.id == info.id;
            });
            if (duplicate)
                info.problem = QStringLiteral("duplicate %1 plugin \"%2\" (an earlier folder wins)")
                                   .arg(info.kind, info.id);
            else
                info.usable = true;
        }
        m_plugins << info;
    }
}

Result<QObject *> PluginHost::load(const QString &kind, const QString &id)
{
    const QString key = kind + QLatin1Char('/') + id;
    if (QPluginLoader *loader = m_loaders.value(key))
        return loader->instance();

    const PluginInfo *found = nullptr;
    const PluginInfo *unusable = nullptr;
    QStringList available;
    for (const PluginInfo &p : m_plugins) {
        if (p.kind != kind)
            continue;
        if (p.usable)
            available << p.id;
        if (p.id == id) {
            if (p.usable && !found)
                found = &p;
            else if (!p.usable && !unusable)
                unusable = &p;
        }
    }
    if (!found) {
        if (unusable)
            return Error{QStringLiteral("unusable"), QStringLiteral("%1 plugin \"%2\" (%3) cannot be used: %4")
                                                         .arg(kind, id, unusable->file, unusable->problem)};
        return Error{QStringLiteral("not_found"),
                     QStringLiteral("no %1 plugin \"%2\" (available: %3; searched %4)")
                         .arg(kind, id, available.isEmpty() ? QStringLiteral("none") : available.join(", "),
                              m_dirs.join(", "))};
    }
    auto *loader = new QPluginLoader(found->file);
    QObject *instance = loader->instance();
    if (!instance) {
        const QString reason = loader->errorString();
        delete loader;
        for (PluginInfo &p : m_plugins)
            if (p.file == found->file) {
                p.usable = false;
                p.problem = QStringLiteral("failed to load: ") + reason;
            }
        return Error{QStringLiteral("load_failed"),
                     QStringLiteral("%1 plugin \"%2\" failed to load: %3").arg(kind, id, reason)};
    }
    m_loaders.insert(key, loader);
    return instance;
}

template <typename T>
static Result<T *> cast(Result<QObject *> r, const QString &kind, const QString &id)
{
    if (!r)
        return r.error();
    if (T *p = qobject_cast<T *>(*r))
        return p;
    return Error{QStringLiteral("unusable"),
                 QStringLiteral("%1 plugin \"%2\" does not implement the %1 interface").arg(kind, id)};
}

Result<IProtocolPlugin *> PluginHost::protocol(const QString &id)
{
    return cast<IProtocolPlugin>(load(QStringLiteral("protocol"), id), QStringLiteral("protocol"), id);
}

Result<IScenarioPlugin *> PluginHost::scenario(const QString &id)
{
    return cast<IScenarioPlugin>(load(QStringLiteral("scenario"), id), QStringLiteral("scenario"), id);
}

Result<ISinkPlugin *> PluginHost::sink(const QString &id)
{
    return cast<ISinkPlugin>(load(QStringLiteral("sink"), id), QStringLiteral("sink"), id);
}

} // namespace Userflux
