// The service the thrift router's tests call through the router: answers
// that say which backend answered, a struct of every type (so both
// protocols' skipping parsers see them), oneway calls and a declared
// exception.

struct Thing {
  1: i32 id,
  2: string name,
  3: list<i64> values,
  4: map<string, double> scores,
  5: bool flag,
  6: set<i16> tags,
  7: optional Thing child,
  8: binary blob,
  9: byte small,
  10: bool other,
  40: list<bool> bits,
}

exception Oops {
  1: string why,
}

service Echo {
  string echo(1: string text),
  string whoami(),
  Thing roundtrip(1: Thing thing),
  oneway void note(1: string text),
  list<string> notes(),
  void fail(1: string why) throws (1: Oops oops),
}
