import CSQLite
import Foundation

/// A thin wrapper over SQLite's C API: one connection, prepared statements, errors with SQLite's
/// message. apsweep talks to SQLite directly rather than through GRDB: the journal needs a handful
/// of statements in one thread, and the C library is already on every Debian machine, so the
/// extra package (and its build time on 2 cores) would buy nothing here.
final class Database {
    private var handle: OpaquePointer?
    let path: String
    let readOnly: Bool

    /// Opens (read-write: creating) the database at `path`. Read-only connections never write,
    /// never create the file, and never change its journal mode.
    init(path: String, readOnly: Bool = false) throws {
        self.path = path
        self.readOnly = readOnly
        let flags = readOnly ? SQLITE_OPEN_READONLY | SQLITE_OPEN_URI : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
        let target = readOnly ? "file:" + path.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed)! + "?mode=ro" : path
        if sqlite3_open_v2(target, &handle, flags | SQLITE_OPEN_NOMUTEX, nil) != SQLITE_OK {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close(handle)
            handle = nil
            throw JournalError.sqlite("\(path): cannot open the journal: \(message)")
        }
        sqlite3_busy_timeout(handle, 5000)
        sqlite3_extended_result_codes(handle, 1)
    }

    /// Prepared statements by SQL text: the coordinator runs the same few statements per task,
    /// and parsing them each time cost more than executing them.
    private var statements: [String: OpaquePointer] = [:]

    deinit { close() }

    func close() {
        for (_, st) in statements { sqlite3_finalize(st) }
        statements.removeAll()
        if let handle { sqlite3_close(handle) }
        handle = nil
    }

    var isOpen: Bool { handle != nil }

    func error(_ sql: String) -> JournalError {
        let code = sqlite3_extended_errcode(handle)
        let message = String(cString: sqlite3_errmsg(handle))
        if code & 0xff == SQLITE_FULL {
            return .diskFull("\(path): the disk is full (\(message)); free space and run the same command again — the journal is intact")
        }
        if code & 0xff == SQLITE_CORRUPT || code & 0xff == SQLITE_NOTADB {
            return .corrupt("\(path): \(message)")
        }
        return .sqlite("\(path): \(message) in: \(sql.prefix(80))")
    }

    func execute(_ sql: String) throws {
        guard handle != nil else { throw JournalError.sqlite("\(path): the journal is closed") }
        var message: UnsafeMutablePointer<CChar>?
        if sqlite3_exec(handle, sql, nil, nil, &message) != SQLITE_OK {
            sqlite3_free(message)
            throw error(sql)
        }
    }

    /// Values bindable to statement parameters.
    enum Value {
        case int(Int64), double(Double), text(String), blob([UInt8]), null
    }

    /// Runs `sql` with `values` bound to ?1, ?2, …; `row` sees each result row.
    func run(_ sql: String, _ values: [Value] = [], row: (Row) throws -> Void = { _ in }) throws {
        guard handle != nil else { throw JournalError.sqlite("\(path): the journal is closed") }
        var statement = statements[sql]
        if statement == nil {
            guard sqlite3_prepare_v2(handle, sql, -1, &statement, nil) == SQLITE_OK else { throw error(sql) }
            statements[sql] = statement
        }
        defer {
            sqlite3_reset(statement)
            sqlite3_clear_bindings(statement)
        }
        let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
        for (i, v) in values.enumerated() {
            let index = Int32(i + 1)
            switch v {
            case let .int(x): sqlite3_bind_int64(statement, index, x)
            case let .double(x): sqlite3_bind_double(statement, index, x)
            case let .text(s): sqlite3_bind_text(statement, index, s, -1, transient)
            case let .blob(b): _ = b.withUnsafeBytes { sqlite3_bind_blob(statement, index, $0.baseAddress ?? UnsafeRawPointer(bitPattern: 1), Int32($0.count), transient) }
            case .null: sqlite3_bind_null(statement, index)
            }
        }
        while true {
            let rc = sqlite3_step(statement)
            if rc == SQLITE_DONE { return }
            guard rc == SQLITE_ROW else { throw error(sql) }
            try row(Row(statement: statement!))
        }
    }

    /// Runs `sql` once per element of `rows`, `bind` setting its parameters: a bulk insert
    /// without `run`'s per-call statement lookup and value array (the plan's 100,000 rows).
    func runEach<S: Sequence>(_ sql: String, _ rows: S, bind: (S.Element, Binder) -> Void) throws {
        guard handle != nil else { throw JournalError.sqlite("\(path): the journal is closed") }
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(handle, sql, -1, &statement, nil) == SQLITE_OK, let statement else { throw error(sql) }
        defer { sqlite3_finalize(statement) }
        let binder = Binder(statement: statement)
        for row in rows {
            bind(row, binder)
            let rc = sqlite3_step(statement)
            sqlite3_reset(statement)
            sqlite3_clear_bindings(statement)
            guard rc == SQLITE_DONE else { throw error(sql) }
        }
    }

    /// Sets the parameters ?1, ?2, … of the statement `runEach` is running (nil binds NULL).
    struct Binder {
        let statement: OpaquePointer
        private var transient: sqlite3_destructor_type { unsafeBitCast(-1, to: sqlite3_destructor_type.self) }
        func int(_ i: Int32, _ v: Int?) { if let v { sqlite3_bind_int64(statement, i, Int64(v)) } else { sqlite3_bind_null(statement, i) } }
        func text(_ i: Int32, _ v: String?) { if let v { sqlite3_bind_text(statement, i, v, -1, transient) } else { sqlite3_bind_null(statement, i) } }
        func blob(_ i: Int32, _ v: [UInt8]) {
            _ = v.withUnsafeBytes { sqlite3_bind_blob(statement, i, $0.baseAddress ?? UnsafeRawPointer(bitPattern: 1), Int32($0.count), transient) }
        }
    }

    /// The first column of the first row, as text (nil when there is no row or it is NULL).
    func scalar(_ sql: String, _ values: [Value] = []) throws -> String? {
        var out: String?
        try run(sql, values) { if out == nil { out = $0.text(0) } }
        return out
    }

    func transaction(_ body: () throws -> Void) throws {
        try execute("BEGIN IMMEDIATE")
        do {
            try body()
            try execute("COMMIT")
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    struct Row {
        let statement: OpaquePointer
        func int(_ i: Int32) -> Int64 { sqlite3_column_int64(statement, i) }
        func double(_ i: Int32) -> Double { sqlite3_column_double(statement, i) }
        func text(_ i: Int32) -> String? { sqlite3_column_text(statement, i).map { String(cString: $0) } }
        func isNull(_ i: Int32) -> Bool { sqlite3_column_type(statement, i) == SQLITE_NULL }
        func blob(_ i: Int32) -> [UInt8] {
            let n = Int(sqlite3_column_bytes(statement, i))
            guard n > 0, let p = sqlite3_column_blob(statement, i) else { return [] }
            return Array(UnsafeRawBufferPointer(start: p, count: n))
        }
    }
}

/// A journal that cannot be used, and why. Every case says what to do.
public enum JournalError: Error, CustomStringConvertible, Equatable {
    case sqlite(String)
    case schema(String)
    /// Not an apsweep journal (another program's database, an empty file, …).
    case notAJournal(String)
    /// Another process holds the journal.
    case locked(String)
    case diskFull(String)
    case corrupt(String)
    public var description: String {
        switch self {
        case let .sqlite(m), let .schema(m), let .notAJournal(m), let .locked(m), let .diskFull(m), let .corrupt(m): return m
        }
    }
}
