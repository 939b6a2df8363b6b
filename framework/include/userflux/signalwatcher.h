#pragma once
// Turns POSIX signals (SIGTERM, SIGINT, ...) into a Qt signal on the thread that owns the watcher, through a
// self-pipe: the handler only write()s the signal number (async-signal-safe); a QSocketNotifier reads it.
//
// Ownership and threading: create at most one per process, on the main thread, before the event loop runs;
// its destructor restores the default dispositions. Never blocks.
#include <QList>
#include <QObject>

class QSocketNotifier;

namespace Userflux {

class SignalWatcher : public QObject {
    Q_OBJECT
public:
    explicit SignalWatcher(const QList<int> &watched, QObject *parent = nullptr);
    ~SignalWatcher() override;

Q_SIGNALS:
    void received(int signal);

private:
    void readPipe();
    QList<int> m_signals;
    QSocketNotifier *m_notifier = nullptr;
};

} // namespace Userflux
