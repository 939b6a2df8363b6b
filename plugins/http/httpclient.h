#pragma once
#include <userflux/plugin.h>

#include <QHash>
#include <QNetworkAccessManager>
#include <QNetworkRequest>
#include <QObject>
#include <QSslConfiguration>

#include <vector>

class QNetworkReply;
class QTimer;

namespace Userflux::Plugins {

// A protocol client on QNetworkAccessManager (QNAM), bound to one worker thread.
//
// QNAM facts this works around (see docs/ARCHITECTURE.md): at most 6 HTTP/1.1 connections per host per manager,
// so vUsers are spread over several managers, at most 6 per manager; proxies from the environment, automatic
// redirects and the shared cookie jar are all switched off (the core follows redirects hop by hop and keeps
// cookies per vUser); QNAM has no whole-request timeout and cleartext HTTP/2 by prior knowledge hangs against an
// HTTP/1.1-only server, so every request has its own deadline timer; an abort surfaces as
// OperationCanceledError whatever its cause, so the client remembers why it aborted.
class QnamClient final : public QObject, public IProtocolClient {
    Q_OBJECT
public:
    explicit QnamClient(const nlohmann::json &config);
    ~QnamClient() override;

    quint64 send(ProtocolRequest request, Callback done) override;
    void cancel(quint64 handle) override;

private:
    struct InFlight {
        QNetworkReply *reply = nullptr;
        QTimer *deadline = nullptr;
        Callback done;
        ProtocolResponse response;
        bool wantBody = false;
        ErrorKind abortReason = ErrorKind::None;
        bool h2c = false;
        bool sawHeaders = false;
    };

    QNetworkAccessManager *managerFor(quint64 affinity);
    void onFinished(quint64 handle);
    void abortWith(quint64 handle, ErrorKind reason);

    enum class Version { Auto, Http11, Http2, H2c };
    Version m_version = Version::Auto;
    bool m_tlsVerify = true;
    QSslConfiguration m_ssl;
    std::vector<QNetworkAccessManager *> m_managers;
    std::vector<int> m_managerLoad;           // vUsers assigned to each manager
    QHash<quint64, int> m_affinity;           // vUser -> manager index
    QHash<quint64, InFlight *> m_inflight;
    quint64 m_nextHandle = 1;
};

class HttpProtocolPlugin : public QObject, public IProtocolPlugin {
    Q_OBJECT
    Q_PLUGIN_METADATA(IID UserfluxProtocolPlugin_iid FILE "http.json")
    Q_INTERFACES(Userflux::IProtocolPlugin)
public:
    ConfigErrors validate(const nlohmann::json &config) const override;
    std::unique_ptr<IProtocolClient> createClient(const ProtocolOptions &options) override;
};

} // namespace Userflux::Plugins
