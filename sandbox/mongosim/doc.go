// Package mongosim simulates MongoDB replica-set members that speak the real
// wire protocol, so the official driver (and ferry's activities through it) can
// discover a topology, reconfigure it, step primaries down and write data while
// the simulation enforces mongod's rules, takes time like a real cluster and
// records what happened, for tests and chaos runs to judge from the server side.
//
// Each member listens on its own 127.0.0.1 port and answers OP_MSG (and the
// legacy OP_QUERY handshake) like a mongod 7.0 started with --replSet. One
// mutex guards the whole set: the simulation is small, and a single lock makes
// every state transition atomic, which is what lets the record be trusted.
//
// Simulated, with mongod's rules, codes and (as closely as known) messages:
//   - hello/isMaster per member view, topologyVersion, awaitable and exhaust
//     (streaming) hello, RSGhost answers from members outside the config;
//   - replSetGetConfig (commitmentStatus), replSetGetStatus, replSetReconfig
//     (config validation, the one-voter-change rule, the quorum check, waiting
//     for the current and then the new config to be majority committed),
//     replSetStepDown (catch-up wait, election handoff), replSetFreeze;
//   - initial sync (STARTUP2), replication lag, elections on a lost primary or
//     by priority takeover, a primary stepping down when it loses its majority;
//   - an oplog per member, w:1 / w:N / w:majority write concern with wtimeout,
//     the implicit w:majority default, rollback of writes the new primary never
//     had, retryable writes answered from history;
//   - insert/find/update/delete/count/aggregate ($match $sort $skip $limit
//     $project $count and a constant-key $group with $sum);
//   - faults (ApplyFault): members down or partitioned, added lag, slow initial
//     sync, and command-error, which answers a named command with a chosen error
//     code ({ok: 0, errmsg, code, codeName}) from its (After+1)-th call on.
//
// Not simulated: authentication, TLS, compression, transactions, change
// streams, indexes other than the unique _id, getMore (every result fits the
// first batch), read concern levels (reads are local), arbiters' data-less
// behaviour beyond config rules, secondary chaining (secondaries sync from the
// primary), catch-up takeover, and durable storage across Close.
package mongosim
