"""Old values: known without a SELECT per save (DESIGN invariant 2), and always right.

Each test runs in a transaction, where a tracked save of a loaded instance costs
exactly the queries of the same save of an untracked model: its event waits until
the transaction commits (or the trail is read) and goes into one INSERT with the
transaction's other events (tests/test_held.py counts that one). When the trail
cannot know the stored values (an instance built by hand, a deferred field changed
without being loaded) it pays one SELECT, and records the truth.
"""

from decimal import Decimal

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.models import FETCH_PEERS, F, Model

from signaltrail.models import Event
from signaltrail.snapshot import snapshot
from tests.testapp.models import Article, Code, Note, Place, Product, Restaurant, UUIDThing

PRODUCT = Product._meta.db_table


def selects_from(captured, table):
    """The SELECT statements of a capture that read ``table``."""
    return [
        q["sql"]
        for q in captured
        if q["sql"].lstrip().upper().startswith("SELECT") and table in q["sql"]
    ]


def last_changes(obj, action="update"):
    event = Event.objects.for_object(obj).filter(action=action).order_by("-id").first()
    assert event is not None, f"no {action} event for {obj!r}"
    return event.changes


@pytest.fixture
def product():
    """A stored product; its create event also warms the ContentType cache."""
    p = Product.objects.create(name="Hammer", price=Decimal("9.90"), stock=3, data={"a": 1})
    return Product.objects.get(pk=p.pk)


@pytest.mark.django_db
def test_saving_a_loaded_instance_adds_only_the_event_queries(product, django_assert_num_queries):
    note = Note.objects.create(text="x")
    note = Note.objects.get(pk=note.pk)
    note.text = "y"
    with django_assert_num_queries(1):  # the UPDATE
        note.save()

    product.stock = 4
    # the UPDATE alone, as for the untracked Note: no SELECT of the row
    with django_assert_num_queries(1) as tracked:
        product.save()
    assert selects_from(tracked.captured_queries, PRODUCT) == []
    assert last_changes(product) == {"stock": [3, 4]}


@pytest.mark.django_db
def test_saving_a_created_instance_again_costs_no_select(django_assert_num_queries):
    p = Product.objects.create(name="Hammer", stock=3)
    p.stock = 4
    with django_assert_num_queries(1) as tracked:  # the UPDATE
        p.save()
    assert selects_from(tracked.captured_queries, PRODUCT) == []
    assert last_changes(p) == {"stock": [3, 4]}


@pytest.mark.django_db
def test_a_save_that_changes_nothing_costs_only_the_update(product, django_assert_num_queries):
    with django_assert_num_queries(1):
        product.save()


@pytest.mark.django_db
def test_update_fields_costs_no_select(product, django_assert_num_queries):
    product.stock = 5
    with django_assert_num_queries(1) as tracked:  # the UPDATE
        product.save(update_fields=["stock"])
    assert selects_from(tracked.captured_queries, PRODUCT) == []
    assert last_changes(product) == {"stock": [3, 5]}


@pytest.mark.django_db
def test_creating_costs_no_select(django_assert_num_queries):
    with django_assert_num_queries(1) as tracked:  # the INSERT
        Product.objects.create(name="Hammer")
    assert selects_from(tracked.captured_queries, PRODUCT) == []
    ContentType.objects.get_for_model(UUIDThing)  # cached once per process
    # A pk from a default: the INSERT alone too.
    with django_assert_num_queries(1) as tracked:
        UUIDThing.objects.create(label="x")
    assert selects_from(tracked.captured_queries, UUIDThing._meta.db_table) == []


@pytest.mark.django_db
def test_multi_table_child_loaded_costs_no_select(django_assert_num_queries):
    r = Restaurant.objects.create(name="Luigi", serves_pizza=False)
    r = Restaurant.objects.get(pk=r.pk)
    r.name = "Mario"
    r.serves_pizza = True
    with django_assert_num_queries(2) as tracked:  # two UPDATEs
        r.save()
    assert selects_from(tracked.captured_queries, "testapp_place") == []
    assert selects_from(tracked.captured_queries, "testapp_restaurant") == []
    assert last_changes(r) == {"name": ["Luigi", "Mario"], "serves_pizza": [False, True]}


@pytest.mark.django_db
def test_deleting_a_loaded_instance_costs_no_select(product, django_assert_num_queries):
    with django_assert_num_queries(2) as tracked:  # m2m rows, the row
        product.delete()
    assert selects_from(tracked.captured_queries, PRODUCT) == []


# -- fallbacks: one query, correct values --------------------------------------


@pytest.mark.django_db
def test_instance_built_by_hand_with_an_existing_pk(product, django_assert_num_queries):
    note = Note.objects.create(text="x")
    with django_assert_num_queries(1):  # Django tries the UPDATE first
        Note(pk=note.pk, text="y").save()

    rebuilt = Product(pk=product.pk, name="Hammer", price=Decimal("9.90"), stock=7)
    with django_assert_num_queries(1 + 1) as tracked:  # the row's SELECT; UPDATE
        rebuilt.save()
    assert len(selects_from(tracked.captured_queries, PRODUCT)) == 1
    # Every field the hand-built instance wrote over is compared, data included.
    assert last_changes(product) == {"stock": [3, 7], "data": [{"a": 1}, {}]}


@pytest.mark.django_db
def test_instance_built_by_hand_with_a_new_pk_is_a_create():
    Product(pk=4242, name="Fresh").save()
    assert Product.objects.filter(pk=4242).exists()
    assert last_changes(Product(pk=4242), "create")["name"] == [None, "Fresh"]
    Code(code="NEW", label="x").save()
    assert last_changes(Code(pk="NEW"), "create") == {
        "code": [None, "NEW"],
        "label": [None, "x"],
    }


@pytest.mark.django_db
def test_deleting_an_instance_built_by_hand_records_the_stored_values(product):
    Product(pk=product.pk).delete()
    changes = last_changes(Product(pk=product.pk), "delete")
    assert changes["name"] == ["Hammer", None]
    assert changes["stock"] == [3, None]
    assert changes["price"] == ["9.90", None]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "loaded",
    [
        # Product.__str__ reads category_id: leaving it deferred would make the
        # event's object_repr load it (as str() would anywhere).
        pytest.param(lambda pk: Product.objects.only("name", "category").get(pk=pk), id="only"),
        pytest.param(lambda pk: Product.objects.defer("stock").get(pk=pk), id="defer"),
    ],
)
def test_deferred_field_changed_without_loading_it(product, loaded, django_assert_num_queries):
    p = loaded(product.pk)
    p.stock = 8  # never read: the trail does not know the stored value
    with django_assert_num_queries(1 + 1) as tracked:  # the row's SELECT; UPDATE
        p.save()
    assert len(selects_from(tracked.captured_queries, PRODUCT)) == 1
    assert last_changes(product) == {"stock": [3, 8]}
    assert Product.objects.get(pk=product.pk).stock == 8


@pytest.mark.django_db
def test_deferred_fields_not_touched_cost_nothing(product, django_assert_num_queries):
    p = Product.objects.only("name", "category").get(pk=product.pk)
    p.name = "Saw"
    with django_assert_num_queries(1) as tracked:  # the UPDATE
        p.save()
    assert selects_from(tracked.captured_queries, PRODUCT) == []
    assert last_changes(product) == {"name": ["Hammer", "Saw"]}


@pytest.mark.django_db
def test_deferred_field_loaded_by_access_then_changed(product, django_assert_num_queries):
    p = Product.objects.only("name", "category").get(pk=product.pk)
    with django_assert_num_queries(1):
        assert p.stock == 3  # Django loads it with refresh_from_db(fields=[...])
    p.stock = 9
    with django_assert_num_queries(1) as tracked:  # the UPDATE
        p.save()
    assert selects_from(tracked.captured_queries, PRODUCT) == []
    assert last_changes(product) == {"stock": [3, 9]}


@pytest.mark.django_db
def test_deferred_field_loaded_for_peers_then_changed(product):
    """FETCH_PEERS loads a deferred field for all instances of the queryset at once,
    without refresh_from_db; the recorded old value must still be the stored one."""
    other = Product.objects.create(name="Saw", stock=11)
    first, second = Product.objects.fetch_mode(FETCH_PEERS).only("name").order_by("pk")
    assert first.stock == 3
    assert "stock" in second.__dict__  # loaded along with first's
    second.stock = 12
    second.save()
    assert last_changes(other) == {"stock": [11, 12]}


def _built(instance):
    """What an instance holds, but the trail's snapshot (peers: how many)."""
    state = dict(instance._state.__dict__)
    state.pop("trail_snapshot", None)
    if "peers" in state:
        state["peers"] = len(state["peers"])
    values = {k: v for k, v in instance.__dict__.items() if k != "_state"}
    return type(instance), values, state


@pytest.mark.django_db
@pytest.mark.parametrize(
    "load",
    [
        lambda m: m.objects.order_by("pk"),
        lambda m: m.objects.order_by("pk").only("pk"),
        lambda m: m.objects.order_by("pk").fetch_mode(FETCH_PEERS),
        lambda m: m.objects.order_by("pk").defer("name").fetch_mode(FETCH_PEERS),
    ],
    ids=["full", "only", "peers", "deferred-peers"],
)
@pytest.mark.parametrize("model", [Place, Product], ids=["plain", "mutable"])
def test_loaded_instances_are_the_ones_djangos_from_db_builds(model, load):
    """The trail's from_db builds a full row itself (Place: no value to copy);
    the instances must be exactly Django's, with the loaded values kept."""
    model.objects.create(name="one")
    model.objects.create(name="two")
    ours = list(load(model))
    wrapped = model.__dict__["from_db"]
    model.from_db = classmethod(Model.from_db.__func__)
    try:
        djangos = list(load(model))
    finally:
        model.from_db = wrapped
    assert [_built(i) for i in ours] == [_built(i) for i in djangos]
    for instance in ours:
        loaded = {k: v for k, v in instance.__dict__.items() if k != "_state"}
        assert snapshot(instance) == loaded
        assert "trail_snapshot" not in djangos[0]._state.__dict__


@pytest.mark.django_db
def test_refresh_from_db_after_an_outside_change_updates_the_baseline(product):
    elsewhere = Product.objects.get(pk=product.pk)
    elsewhere.stock = 50
    elsewhere.save()

    product.refresh_from_db()
    product.stock = 60
    product.save()
    assert last_changes(product) == {"stock": [50, 60]}


@pytest.mark.django_db
def test_refresh_from_db_of_some_fields_keeps_other_pending_changes(product):
    elsewhere = Product.objects.get(pk=product.pk)
    elsewhere.stock = 50
    elsewhere.save()

    product.name = "Saw"  # changed in memory, not saved yet
    product.refresh_from_db(fields=["stock"])
    assert product.name == "Saw"
    product.stock = 60
    product.save()
    assert last_changes(product) == {"name": ["Hammer", "Saw"], "stock": [50, 60]}


@pytest.mark.django_db
def test_refresh_from_db_from_a_narrow_queryset_keeps_other_pending_changes(product):
    product.stock = 99
    product.refresh_from_db(from_queryset=Product.objects.only("name"))
    assert product.stock == 99  # Django only copies what the queryset loaded
    product.save()
    assert last_changes(product) == {"stock": [3, 99]}


@pytest.mark.django_db
def test_json_mutated_in_place_is_a_change(product):
    product.data["k"] = 1
    product.save()
    assert last_changes(product) == {"data": [{"a": 1}, {"a": 1, "k": 1}]}

    product.data["nested"] = {"list": [1]}
    product.save()
    product.data["nested"]["list"].append(2)
    product.save()
    assert last_changes(product) == {
        "data": [
            {"a": 1, "k": 1, "nested": {"list": [1]}},
            {"a": 1, "k": 1, "nested": {"list": [1, 2]}},
        ]
    }


@pytest.mark.django_db
def test_json_true_and_one_are_different_values(product):
    """Python says True == 1 and 0 == False; JSON (and the stored row) does not."""
    product.data = {"a": True}  # was {"a": 1}
    product.save()
    assert last_changes(product) == {"data": [{"a": 1}, {"a": True}]}
    product.data = {"a": True, "list": [0]}
    product.save()
    product.data["list"][0] = False
    product.save()
    assert last_changes(product) == {
        "data": [{"a": True, "list": [0]}, {"a": True, "list": [False]}]
    }
    assert Product.objects.get(pk=product.pk).data == {"a": True, "list": [False]}

    product.data = 1
    product.save()
    product.data = True
    product.save()
    assert last_changes(product) == {"data": [1, True]}


@pytest.mark.django_db
def test_json_of_a_created_instance_mutated_in_place_is_a_change():
    p = Product.objects.create(name="Hammer", data={"a": 1})
    p.data["a"] = 2
    p.save()
    assert last_changes(p) == {"data": [{"a": 1}, {"a": 2}]}


@pytest.mark.django_db
def test_json_of_an_instance_from_a_refresh_mutated_in_place_is_a_change(product):
    product.refresh_from_db(fields=["data"])
    product.data["a"] = 2
    product.save()
    assert last_changes(product) == {"data": [{"a": 1}, {"a": 2}]}


@pytest.mark.django_db
def test_f_expression_records_the_value_written(product, django_assert_num_queries):
    product.stock = F("stock") + 5
    # The UPDATE; where it cannot return the value it wrote (MariaDB), one
    # SELECT to read it back.
    returning = connection.features.can_return_rows_from_update
    with django_assert_num_queries(1 if returning else 2):
        product.save()
    assert last_changes(product) == {"stock": [3, 8]}
    assert product.stock == 8  # Django's own doing (RETURNING or a deferred reload)

    product.stock = F("stock") - 1
    product.save(update_fields=["stock"])
    assert last_changes(product) == {"stock": [8, 7]}
    assert Product.objects.get(pk=product.pk).stock == 7


@pytest.mark.django_db
def test_f_expression_on_an_instance_built_by_hand(product):
    Product(
        pk=product.pk, name="Hammer", price=Decimal("9.90"), stock=F("stock") * 2, data={"a": 1}
    ).save()
    assert last_changes(product) == {"stock": [3, 6]}


@pytest.mark.django_db
def test_rows_hidden_by_the_default_manager_cost_no_select_when_loaded(
    django_assert_num_queries,
):
    article = Article.objects.create(title="Draft", active=False)
    article = Article.everything.get(pk=article.pk)
    article.title = "Final"
    with django_assert_num_queries(1) as tracked:  # the UPDATE
        article.save()
    assert selects_from(tracked.captured_queries, Article._meta.db_table) == []
    assert last_changes(article) == {"title": ["Draft", "Final"]}
