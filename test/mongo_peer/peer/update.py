"""Update operators on decoded documents, logging changes as mongod's $v:2 oplog diffs.

The diff follows the server's modifier-update logging (v2 log builder): a field set on an
existing value goes to 'u', a new field to 'i', an $unset to 'd' ({field: false}); changes
below an existing sub-document or array become 's<field>' sub-diffs, array sub-diffs carry
'a': true and 'u<index>' / 's<index>' entries.  Within one level the sections are written in
the order d, u, i, then sub-diffs.
"""
import copy
import datetime
import struct

from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.timestamp import Timestamp

from .errors import MongoError
from .query import matches, match_op, _is_op_doc, sort_docs
from .values import (compare, encode, is_number, num_value, type_name, values_equal)

OPERATORS = ("$set", "$unset", "$inc", "$mul", "$min", "$max", "$rename", "$push",
             "$pull", "$pullAll", "$addToSet", "$pop", "$currentDate", "$setOnInsert")


_PLAIN = (int, Int64, str, bool, type(None))


def same_bson(a, b):
    """same_bson is mongod's binaryEqualValues: same type and same bytes."""
    t = type(a)
    if t is not type(b):
        return False
    if t in _PLAIN:
        return a == b
    if t is float:
        return struct.pack("<d", a) == struct.pack("<d", b)
    try:
        return encode({"": a}) == encode({"": b})
    except Exception:
        return a == b


class _Node:
    __slots__ = ("kind", "children", "value")

    def __init__(self, kind, value=None):
        """__init__ makes a diff node of a kind (sub, ins, arr or a u/i/d leaf)."""
        self.kind = kind  # 'sub' | 'ins' (new document) | 'arr' | leaf: 'u' 'i' 'd'
        self.children = {}
        self.value = value


class DiffLog:
    """DiffLog accumulates logged modifications as a tree and serialises a $v:2 diff."""

    def __init__(self):
        """__init__ makes an empty diff log."""
        self.root = _Node("sub")
        self.empty = True

    def add(self, path, leaf, first_new=None):
        """add records leaf at path; path is a list of (component, is_array_index)."""
        self.empty = False
        node = self.root
        for i, (name, _is_idx) in enumerate(path):
            key = int(name) if node.kind == "arr" else name
            if i == len(path) - 1:
                node.children[key] = leaf
                return
            child = node.children.get(key)
            if child is None or child.kind in ("u", "i", "d"):
                if i + 1 < len(path) and path[i + 1][1]:
                    child = _Node("arr")
                elif first_new is not None and i >= first_new:
                    child = _Node("ins")
                else:
                    child = _Node("sub")
                node.children[key] = child
            node = child

    def updated(self, path, value):
        """updated records a value set on an existing path."""
        self.add(path, _Node("u", value))

    def created(self, path, first_new, value):
        """created records a new path (first_new: its first component that did not exist)."""
        self.add(path, _Node("i", value), first_new)

    def deleted(self, path):
        """deleted records an unset path."""
        self.add(path, _Node("d"))

    def serialize(self):
        """serialize returns the oplog's {$v: 2, diff: ...}."""
        return {"$v": 2, "diff": _write_doc(self.root)}


def _new_doc(node):
    """_new_doc renders a created sub-tree as the new sub-document it logs."""
    out = {}
    for k, c in node.children.items():
        out[k] = c.value if c.kind in ("i", "u") else _new_doc(c)
    return out


def _write_doc(node):
    """_write_doc renders an object node as a $v:2 diff section (d, u, i, s<field>)."""
    d, u, i, subs = {}, {}, {}, []
    for k, c in node.children.items():
        if c.kind == "d":
            d[k] = False
        elif c.kind == "u":
            u[k] = c.value
        elif c.kind == "i":
            i[k] = c.value
        elif c.kind == "ins":
            i[k] = _new_doc(c)
        else:
            subs.append((k, c))
    out = {}
    if d:
        out["d"] = d
    if u:
        out["u"] = u
    if i:
        out["i"] = i
    for k, c in subs:
        out["s" + k] = _write_sub(c)
    return out


def _write_sub(node):
    """_write_sub renders a sub-diff: an object diff or an array diff {a: true, ...}."""
    if node.kind != "arr":
        return _write_doc(node)
    out = {"a": True}
    for idx in sorted(node.children):
        c = node.children[idx]
        if c.kind in ("u", "i"):
            out["u%d" % idx] = c.value
        elif c.kind == "ins":
            out["u%d" % idx] = _new_doc(c)
        else:
            out["s%d" % idx] = _write_sub(c)
    return out


def _component_key(p):
    """_component_key orders path components as mongod applies them."""
    return (0, int(p), "") if p.isdigit() else (1, 0, p)


def _check_path(path):
    """_check_path refuses empty path components (56) and $-prefixed ones other than the
    positional operators (52)."""
    for p in path.split("."):
        if p == "":
            raise MongoError(56, "An empty update path is not valid.")
        if p.startswith("$") and p != "$" and not (p.startswith("$[") and p.endswith("]")):
            raise MongoError(52, "The dollar ($) prefixed field '%s' in '%s' is not allowed in "
                                 "the context of an update's replacement document." % (p, path))


def parse_update(update):
    """parse_update returns [(path, op, arg)] in mongod's application order, checking conflicts."""
    if not update:
        raise MongoError(9, "Update document requires at least one operator")
    items = []
    for op, fields in update.items():
        if op not in OPERATORS:
            if op.startswith("$"):
                raise MongoError(9, "Unknown modifier: %s. Expected a valid update modifier or "
                                    "pipeline-style update specified as an array" % op)
            raise MongoError(9, "Unknown modifier: %s" % op)
        if not isinstance(fields, dict):
            raise MongoError(9, "Modifiers operate on fields but we found type %s instead."
                             % type_name(fields))
        for path, arg in fields.items():
            _check_path(path)
            items.append((path, op, arg))
            if op == "$rename":
                if not isinstance(arg, str):
                    raise MongoError(2, "The 'to' field for $rename must be a string: %s: %r"
                                     % (path, arg))
                _check_path(arg)
    claimed = []
    for path, op, arg in items:
        claimed.append(path)
        if op == "$rename":
            claimed.append(arg)
    ordered = sorted(claimed, key=lambda p: [_component_key(c) for c in p.split(".")])
    for a, b in zip(ordered, ordered[1:]):
        if a == b or b.startswith(a + "."):
            raise MongoError(40, "Updating the path '%s' would create a conflict at '%s'" % (b, a))
    items.sort(key=lambda t: [_component_key(c) for c in t[0].split(".")])
    return items


def _resolve(doc, parts):
    """_resolve walks parts; returns (container, key, typed_path_of_existing, index_of_first_missing)."""
    cur = doc
    typed = []
    for i, p in enumerate(parts):
        if isinstance(cur, dict):
            if p not in cur:
                return cur, i
            typed.append((p, False))
            if i == len(parts) - 1:
                return cur, None
            cur = cur[p]
        elif isinstance(cur, list):
            if not p.isdigit() or int(p) >= len(cur):
                return cur, i
            typed.append((p, True))
            if i == len(parts) - 1:
                return cur, None
            cur = cur[int(p)]
        else:
            return cur, i
    return cur, None


def _typed(doc, parts):
    """_typed returns the values along a path (for error messages and type checks)."""
    out = []
    cur = doc
    for p in parts:
        if isinstance(cur, list):
            out.append((p, True))
            cur = cur[int(p)] if p.isdigit() and int(p) < len(cur) else None
        else:
            out.append((p, False))
            cur = cur.get(p) if isinstance(cur, dict) else None
    return out


def _container(doc, parts):
    """_container returns the object or array holding a path's last component."""
    cur = doc
    for p in parts[:-1]:
        cur = cur[int(p)] if isinstance(cur, list) else cur[p]
    return cur


def _get(container, key):
    """_get reads a key of an object or an index of an array."""
    return container[int(key)] if isinstance(container, list) else container[key]


def _put(container, key, value):
    """_put writes a key of an object or an existing index of an array."""
    if isinstance(container, list):
        container[int(key)] = value
    else:
        container[key] = value


def _create_path(doc, parts, first_missing, value, idstr):
    """_create_path creates missing components from first_missing on and stores value."""
    cur = doc if first_missing == 0 else _container(doc, parts[:first_missing + 1])
    for i in range(first_missing, len(parts)):
        p = parts[i]
        last = i == len(parts) - 1
        new = value if last else {}
        if isinstance(cur, dict):
            cur[p] = new
        elif isinstance(cur, list):
            if not p.isdigit():
                raise MongoError(28, "Cannot create field '%s' in element {%s: %s}"
                                 % (p, parts[i - 1], _short(cur)))
            idx = int(p)
            while len(cur) < idx:
                cur.append(None)
            if len(cur) == idx:
                cur.append(new)
            else:
                cur[idx] = new
        else:
            raise MongoError(28, "Cannot create field '%s' in element {%s: %s}"
                             % (p, parts[i - 1] if i else "", _short(cur)))
        cur = new


def _short(v):
    """_short renders a value for an error message."""
    return repr(v)[:80]


def _arith(op, a, b):
    """_arith adds or multiplies keeping BSON numeric types as mongod does."""
    if isinstance(a, Decimal128) or isinstance(b, Decimal128):
        from decimal import Decimal
        x, y = Decimal(str(num_value(a))), Decimal(str(num_value(b)))
        return Decimal128(x + y if op == "$inc" else x * y)
    if isinstance(a, float) or isinstance(b, float):
        return float(a) + float(b) if op == "$inc" else float(a) * float(b)
    r = int(a) + int(b) if op == "$inc" else int(a) * int(b)
    is_long = isinstance(a, Int64) or isinstance(b, Int64) or not (-2**31 <= int(a) < 2**31) \
        or not (-2**31 <= int(b) < 2**31)
    if not is_long and -2**31 <= r < 2**31:
        return r
    if -2**63 <= r < 2**63:
        return Int64(r)
    raise MongoError(2, "Failed to apply %s operations to current value ((NumberLong)%s) "
                        "for document" % (op, a))


def _now_value(arg):
    """_now_value returns $currentDate's value: a date, or a timestamp if asked."""
    now = datetime.datetime.utcnow()
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)
    if isinstance(arg, dict) and arg.get("$type") == "timestamp":
        import time
        return Timestamp(int(time.time()), 1)
    return now


def _pull_matches(el, arg):
    """_pull_matches tells whether an array element matches a $pull condition."""
    if isinstance(arg, dict) and _is_op_doc(arg):
        return match_op([el], next(iter(arg)), arg[next(iter(arg))], arg) and \
            all(match_op([el], k, v, arg) for k, v in arg.items())
    if isinstance(arg, dict):
        return isinstance(el, dict) and matches(el, arg)
    return values_equal(el, arg)


def _push_values(arg):
    """_push_values returns the values of a $push/$addToSet argument ($each or one)."""
    if isinstance(arg, dict) and "$each" in arg:
        for k in arg:
            if k not in ("$each", "$slice", "$sort", "$position"):
                raise MongoError(2, "Unrecognized clause in $push: %s" % k)
        each = arg["$each"]
        if not isinstance(each, list):
            raise MongoError(2, "The argument to $each in $push must be an array but it was of "
                                "type: %s" % type_name(each))
        return list(each), arg.get("$slice"), arg.get("$sort"), arg.get("$position")
    return [arg], None, None, None


def _sort_array(arr, spec):
    """_sort_array sorts an array for $push's $sort (a spec document or 1/-1)."""
    if isinstance(spec, dict):
        return sort_docs(arr, spec)
    import functools
    d = 1 if spec >= 0 else -1
    return sorted(arr, key=functools.cmp_to_key(lambda x, y: compare(x, y) * d))


def _do_push(old, arg):
    """_do_push returns (new_array, appended_only)."""
    vals, sl, srt, pos = _push_values(arg)
    arr = list(old)
    n = len(arr)
    if pos is None or pos >= n:
        arr.extend(vals)
        append = n > 0
    else:
        if pos < 0:
            pos = max(0, n + pos)
        arr[pos:pos] = vals
        append = False
    if srt is not None:
        arr = _sort_array(arr, srt)
        append = False
    if sl is not None:
        cut = arr[:sl] if sl >= 0 else arr[len(arr) + sl:] if -sl < len(arr) else arr
        if len(cut) != len(arr):
            append = False
        arr = cut
    return arr, append and bool(vals)


def apply_update(doc, update, doc_id=None, inserting=False, query=None, array_filters=None,
                 in_place=False):
    """apply_update applies an operator update to a copy of doc (to doc itself with in_place,
    for callers that decoded it just for this); returns (new_doc, diff or None)."""
    items = parse_update(update) if not isinstance(update, list) else update
    if any(c == "$" or c.startswith("$[") for path, _, _ in items for c in path.split(".")):
        if inserting:
            raise MongoError(2, "The positional operator did not find the match needed from "
                                "the query.")
        from .positional import expand_positional
        items = expand_positional(doc, items, query, array_filters)
    new = doc if in_place else copy.deepcopy(doc)
    log = DiffLog()
    for path, op, arg in items:
        if op == "$setOnInsert" and not inserting:
            continue
        parts = path.split(".")
        if parts[0] == "_id" and not inserting and op != "$setOnInsert":
            cont, missing = _resolve(new, parts)
            if op in ("$set",) and missing is None and same_bson(_get(cont, parts[-1]), arg):
                continue
            raise MongoError(66, "Performing an update on the path '_id' would modify the "
                                 "immutable field '_id'")
        _apply_one(new, parts, op, arg, log, doc_id)
    if log.empty:
        return new, None
    return new, log.serialize()


def _apply_one(doc, parts, op, arg, log, doc_id):
    """_apply_one applies one operator to one path and records the change in log."""
    cont, missing = _resolve(doc, parts)
    path = ".".join(parts)
    if missing is None:
        key = parts[-1]
        old = _get(cont, key)
        typed = _typed(doc, parts)
        if op in ("$set", "$setOnInsert"):
            if not same_bson(old, arg):
                _put(cont, key, copy.deepcopy(arg))
                log.updated(typed, arg)
        elif op == "$unset":
            if isinstance(cont, list):
                if old is not None:
                    cont[int(key)] = None
                    log.updated(typed, None)
            else:
                del cont[key]
                log.deleted(typed)
        elif op in ("$inc", "$mul"):
            if not is_number(arg):
                raise MongoError(14, "Cannot %s with non-numeric argument: {%s: %r}"
                                 % ("increment" if op == "$inc" else "multiply", path, arg))
            if not is_number(old):
                raise MongoError(14, "Cannot apply %s to a value of non-numeric type. {_id: %r} has "
                                     "the field '%s' of non-numeric type %s"
                                 % (op, doc_id, key, type_name(old)))
            val = _arith(op, old, arg)
            if not same_bson(old, val):
                _put(cont, key, val)
                log.updated(typed, val)
        elif op in ("$min", "$max"):
            c = compare(arg, old)
            if (op == "$min" and c < 0) or (op == "$max" and c > 0):
                _put(cont, key, copy.deepcopy(arg))
                log.updated(typed, arg)
        elif op == "$currentDate":
            val = _now_value(arg)
            _put(cont, key, val)
            log.updated(typed, val)
        elif op == "$rename":
            _rename(doc, cont, key, old, arg, typed, log, doc_id)
        elif op in ("$push", "$addToSet", "$pop", "$pull", "$pullAll"):
            _array_op(cont, key, old, op, arg, typed, log, path, doc_id)
        return
    # The path does not exist (fully).
    if op in ("$unset", "$pop", "$pull", "$pullAll", "$rename"):
        if op == "$rename":
            return
        return
    if op in ("$set", "$setOnInsert", "$min", "$max"):
        val = copy.deepcopy(arg)
    elif op == "$inc":
        if not is_number(arg):
            raise MongoError(14, "Cannot increment with non-numeric argument: {%s: %r}" % (path, arg))
        val = arg
    elif op == "$mul":
        if not is_number(arg):
            raise MongoError(14, "Cannot multiply with non-numeric argument: {%s: %r}" % (path, arg))
        if isinstance(arg, Decimal128):
            zero = Decimal128("0")
        elif isinstance(arg, float):
            zero = 0.0
        elif isinstance(arg, Int64):
            zero = Int64(0)
        else:
            zero = 0
        val = _arith("$mul", zero, arg)
    elif op == "$currentDate":
        val = _now_value(arg)
    elif op == "$push":
        val, _ = _do_push([], arg)
    elif op == "$addToSet":
        vals = arg["$each"] if isinstance(arg, dict) and "$each" in arg else [arg]
        val = []
        for v in vals:
            if not any(values_equal(v, x) for x in val):
                val.append(v)
    else:
        return
    _create_path(doc, parts, missing, val, doc_id)
    typed = _typed(doc, parts)
    log.created(typed, missing, val)


def _rename(doc, cont, key, old, dest, typed, log, doc_id):
    """_rename moves a field for $rename and records the unset and the set."""
    if isinstance(cont, list):
        raise MongoError(2, "The source field cannot be an array element")
    del cont[key]
    log.deleted(typed)
    dparts = dest.split(".")
    dcont, dmissing = _resolve(doc, dparts)
    if dmissing is None:
        if isinstance(dcont, list):
            raise MongoError(2, "The destination field cannot be an array element")
        dcont[dparts[-1]] = old
        log.updated(_typed(doc, dparts), old)
    else:
        _create_path(doc, dparts, dmissing, old, doc_id)
        log.created(_typed(doc, dparts), dmissing, old)


def _array_op(cont, key, old, op, arg, typed, log, path, doc_id):
    """_array_op applies $push/$addToSet/$pop/$pull/$pullAll to an array field."""
    if not isinstance(old, list):
        if op == "$push":
            raise MongoError(2, "The field '%s' must be an array but is of type %s in document "
                                "{_id: %r}" % (path, type_name(old), doc_id))
        if op == "$addToSet":
            raise MongoError(2, "Cannot apply $addToSet to non-array field. Field named '%s' has "
                                "non-array type %s" % (key, type_name(old)))
        if op == "$pop":
            raise MongoError(14, "Path '%s' contains an element of non-array type '%s'"
                             % (path, type_name(old)))
        raise MongoError(2, "Cannot apply %s to a non-array value" % op)
    if op == "$push":
        new, append = _do_push(old, arg)
        if append:
            _put(cont, key, new)
            for i in range(len(old), len(new)):
                log.created(typed + [(str(i), True)], len(typed), new[i])
        elif not same_bson(old, new):
            _put(cont, key, new)
            log.updated(typed, new)
        return
    if op == "$addToSet":
        vals = arg["$each"] if isinstance(arg, dict) and "$each" in arg else [arg]
        new = list(old)
        for v in vals:
            if not any(values_equal(v, x) for x in new):
                new.append(v)
    elif op == "$pop":
        if not is_number(arg):
            raise MongoError(9, "Expected a number in: %s: %r" % (path, arg))
        if not old:
            return
        new = old[1:] if num_value(arg) < 0 else old[:-1]
    elif op == "$pull":
        new = [e for e in old if not _pull_matches(e, arg)]
    else:  # $pullAll
        if not isinstance(arg, list):
            raise MongoError(2, "$pullAll requires an array argument but was given a %s"
                             % type_name(arg))
        new = [e for e in old if not any(values_equal(e, a) for a in arg)]
    if len(new) != len(old) or not same_bson(old, new):
        _put(cont, key, new)
        log.updated(typed, new)


def replacement_doc(old_doc, repl):
    """replacement_doc builds the new document of a replacement update, keeping _id first."""
    for k in repl:
        if k.startswith("$"):
            raise MongoError(2, "The dollar ($) prefixed field '%s' in '%s' is not allowed in the "
                                "context of an update's replacement document." % (k, k))
    new = {"_id": old_doc["_id"]} if "_id" in old_doc else {}
    if "_id" in repl and "_id" in old_doc and not values_equal(repl["_id"], old_doc["_id"]):
        raise MongoError(66, "After applying the update, the (immutable) field '_id' was found to "
                             "have been altered to _id: %r" % (repl["_id"],))
    if "_id" in repl and "_id" not in old_doc:
        new["_id"] = repl["_id"]
    for k, v in repl.items():
        if k != "_id":
            new[k] = v
    return new


def upsert_seed(query):
    """upsert_seed extracts the equality fields of a query to seed an upserted document."""
    seed = {}

    def take(q):
        """take collects the equality fields of a query (through $and) into the seed."""
        for k, v in q.items():
            if k == "$and":
                for sub in v:
                    take(sub)
            elif k.startswith("$"):
                continue
            elif isinstance(v, dict) and v and next(iter(v)).startswith("$"):
                if "$eq" in v:
                    _set_dotted(seed, k, copy.deepcopy(v["$eq"]))
            else:
                _set_dotted(seed, k, copy.deepcopy(v))
    take(query)
    return seed


def _set_dotted(doc, path, value):
    """_set_dotted sets a dotted path in a document, creating sub-documents."""
    parts = path.split(".")
    cur = doc
    for p in parts[:-1]:
        nxt = cur.get(p)
        if not isinstance(nxt, dict):
            nxt = {}
            cur[p] = nxt
        cur = nxt
    cur[parts[-1]] = value
