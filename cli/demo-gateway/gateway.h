#pragma once
// The bundled demo target: a small e-commerce Gateway API that simulates fanning each call out to named backend
// services (auth, catalog, inventory, reviews, orders, payments). It is what the quick start loads, and what the
// integration tests check Userflux's numbers against: its counters are exact.
//
// Routes (JSON bodies):
//   POST /api/login       {user, password}      -> 200 {"token"}              backends: auth
//   GET  /api/items       Authorization: Bearer -> 200 [20 items]             backends: catalog ‖ inventory
//   GET  /api/items/{id}                         -> 200 item | 404             backends: catalog ‖ inventory ‖ reviews
//   POST /api/orders      {item_id, quantity}   -> 201 {"order_id", ...}      backends: auth → inventory → orders
//                         Authorization: Bearer                                          → payments
//   GET  /health                                 -> 200 (no backend, not counted)
//   GET  /__gateway/stats, POST /__gateway/reset   (not counted)
// Every /api response carries Server-Timing: one entry per backend called plus gateway;dur=<total>.
//
// Threading: lives on the thread that created it (its Http::Server does); not thread-safe. Never blocks:
// simulated backend latency is a timer.
#include "userflux/httpserver.h"
#include "userflux/result.h"

#include <QElapsedTimer>
#include <QHash>
#include <QHostAddress>
#include <QObject>
#include <QString>
#include <QUrl>

#include <nlohmann/json.hpp>

#include <array>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <vector>

namespace Userflux::Demo {

struct GatewayOptions {
    QHostAddress address = QHostAddress::LocalHost;
    quint16 port = 8080;       // 0 picks a free port
    double errorRate = 0.0;    // 0..1: fraction of backend-reaching API requests answered 5xx by a failing backend
    double latencyScale = 1.0; // multiplies every simulated latency; 0 answers at once
    quint64 seed = 1;          // makes latencies and injected errors reproducible for a given request order
};

class Gateway : public QObject {
    Q_OBJECT
public:
    explicit Gateway(GatewayOptions options, QObject *parent = nullptr);
    ~Gateway() override;

    // Starts listening on options.address:options.port.
    Result<void> start();
    quint16 port() const;
    QUrl baseUrl() const; // "http://127.0.0.1:PORT"

    // The counters served at GET /__gateway/stats (shape documented in gateway.cpp, statsJson()).
    nlohmann::json statsJson() const;
    // Zeroes the counters; responses to requests that arrived before the reset are not counted after it.
    void resetStats();
    const Http::ServerStats &serverStats() const;

    static const std::vector<QString> &routeNames();   // "POST /api/login", ..., "other"
    static const std::vector<QString> &backendNames(); // "auth", "catalog", ...

private:
    struct Call;
    struct Plan;
    struct RouteCounters {
        quint64 requests = 0;
        quint64 errors5xx = 0;
        std::map<int, quint64> byStatus;
    };

    void handle(const Http::Request &request, Http::Responder responder);
    void handleApi(const Http::Request &request, Http::Responder responder);
    Plan planLogin(const Http::Request &request, std::mt19937_64 &rng);
    Plan planItems(const Http::Request &request, std::mt19937_64 &rng);
    Plan planItem(const Http::Request &request, int id, std::mt19937_64 &rng);
    Plan planOrder(const Http::Request &request, std::mt19937_64 &rng);
    void injectError(Plan &plan, std::mt19937_64 &rng);
    void deliver(int route, quint64 generation, const Plan &plan, const QElapsedTimer &started,
                 Http::Responder responder);
    bool tokenValid(const Http::Request &request) const;
    QByteArray issueToken(const QString &user);

    GatewayOptions m_options;
    std::unique_ptr<Http::Server> m_server;

    quint64 m_sequence = 0;   // API requests since start (never reset): the per-request random stream index
    quint64 m_generation = 0; // bumped by resetStats()
    quint64 m_orderCounter = 0;

    // Counters (since the last reset).
    quint64 m_requests = 0;
    quint64 m_responses = 0;
    quint64 m_errors5xx = 0;
    quint64 m_injected = 0;
    quint64 m_clientGone = 0;
    quint64 m_inFlight = 0;
    std::map<int, quint64> m_byStatus;
    std::vector<RouteCounters> m_routes;
    std::vector<std::pair<quint64, quint64>> m_backendCalls; // calls, failures; indexed like backendNames()

    QHash<QByteArray, QString> m_tokens;
    std::deque<QByteArray> m_tokenOrder; // eviction order, so a days-long soak cannot grow memory unbounded
};

} // namespace Userflux::Demo
