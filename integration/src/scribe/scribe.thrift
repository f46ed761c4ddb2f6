// The scribe logging service as Zipkin's scribe collector takes it.
enum ResultCode {
  OK = 0,
  TRY_LATER = 1
}

struct LogEntry {
  1: string category,
  2: string message
}

service Scribe {
  ResultCode Log(1: list<LogEntry> messages)
}
