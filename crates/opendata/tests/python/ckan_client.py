"""Drives the portal's CKAN Action API with ckanapi, the CKAN project's own client:
reads, search, paging, facets, and writes with an admin key. Exits non-zero on the
first failed check. Usage: ckan_client.py BASE_URL ADMIN_KEY VIEWER_KEY"""

import sys

import ckanapi

base, admin_key, viewer_key = sys.argv[1:4]
anon = ckanapi.RemoteCKAN(base, user_agent="dothi-test")
admin = ckanapi.RemoteCKAN(base, apikey=admin_key, user_agent="dothi-test")
viewer = ckanapi.RemoteCKAN(base, apikey=viewer_key, user_agent="dothi-test")


def check(cond, what):
    if not cond:
        print("FAILED:", what)
        sys.exit(1)


status = anon.action.status_show()
check("ckan_version" in status, "status_show")

names = anon.action.package_list()
check(len(names) >= 10, "package_list has the demo datasets: %r" % names)
check(names == sorted(names), "package_list is sorted")

pkg = anon.action.package_show(id="muc-nuoc-song")
check(pkg["name"] == "muc-nuoc-song", "package_show by name")
check(pkg["title"].startswith("Mực nước"), "Vietnamese title")
check(pkg["license_id"] == "cc-by-4.0", "open licence")
formats = sorted(r["format"] for r in pkg["resources"])
check(formats == ["CSV", "CSV", "GeoJSON", "JSON", "NGSI-LD"], "resources: %r" % formats)
check(anon.action.package_show(id=pkg["id"])["name"] == pkg["name"], "package_show by id")
res = anon.action.resource_show(id=pkg["resources"][0]["id"])
check(res["url"].endswith("/dataset/muc-nuoc-song/data.csv"), "resource_show")

# Search: everything, counted; paging with rows and start.
everything = anon.action.package_search(rows=1000)
total = everything["count"]
check(total == len(names), "count %d == %d" % (total, len(names)))
check(len(anon.action.package_search()["results"]) == min(10, total), "rows default 10")
seen = []
start = 0
while True:
    page = anon.action.package_search(rows=3, start=start, sort="name asc")
    if not page["results"]:
        break
    seen += [p["name"] for p in page["results"]]
    start += 3
check(seen == sorted(names), "paging by 3 gives every dataset once, in order")
desc = anon.action.package_search(rows=1000, sort="name desc")
check([p["name"] for p in desc["results"]] == sorted(names, reverse=True), "sort desc")

# Text and filters.
water = anon.action.package_search(q="nước")
check(water["count"] >= 2, "q finds Vietnamese words: %d" % water["count"])
org = anon.action.package_search(fq="organization:so-nong-nghiep-moi-truong", rows=100)
check(org["count"] >= 3 and all(
    p["organization"]["name"] == "so-nong-nghiep-moi-truong" for p in org["results"]),
    "fq organization")
tagged = anon.action.package_search(fq='tags:"mực nước"')
check([p["name"] for p in tagged["results"]] == ["muc-nuoc-song"], "fq tags")
check(anon.action.package_search(fq="res_format:NGSI-LD")["count"] == total, "fq res_format")
check(anon.action.package_search(fq="license_id:cc-by-4.0")["count"] == total, "fq license_id")
check(anon.action.package_search(q="khongcochunay")["count"] == 0, "no match")

# Facets: facet.field goes as a JSON list.
faceted = anon.action.package_search(
    **{"facet.field": ["organization", "tags", "license_id"], "rows": 0})
facets = faceted["facets"]
check(sum(facets["organization"].values()) == total, "organization facet counts")
check(facets["license_id"] == {"cc-by-4.0": total}, "licence facet")
items = faceted["search_facets"]["organization"]["items"]
check(all("display_name" in i and i["count"] > 0 for i in items), "search_facets")
check(faceted["results"] == [], "rows=0 gives no results")

orgs = anon.action.organization_list(all_fields=True)
check(len(orgs) >= 7, "organisations")
check(sum(o["package_count"] for o in orgs) == total, "package counts")
check(anon.action.organization_show(id="so-y-te")["title"].startswith("Sở Y tế"), "organization_show")
check(len(anon.action.group_list()) >= 5, "groups (themes)")
check("mực nước" in anon.action.tag_list(), "tag_list")
check(any(l["id"] == "cc-by-4.0" for l in anon.action.license_list()), "license_list")

# Errors in CKAN's shape.
try:
    anon.action.package_show(id="khong-ton-tai")
    check(False, "not found")
except ckanapi.NotFound:
    pass

# Writes: refused without a key and to a viewer, done by an admin.
new = {
    "name": "diem-do-thu",
    "title": "Điểm đo thử",
    "notes": "Bộ dữ liệu thử nghiệm",
    "owner_org": "so-xay-dung",
    "license_id": "cc-by-4.0",
    "tags": [{"name": "thử nghiệm"}],
    "ngsi_ld_view": {"types": ["Streetlight"], "attrs": ["name", "location", "powerState"]},
}
for client in (anon, viewer):
    try:
        client.action.package_create(**new)
        check(False, "a write without the right")
    except ckanapi.NotAuthorized:
        pass
try:
    admin.action.package_create(**dict(new, license_id="proprietary"))
    check(False, "a closed licence")
except ckanapi.ValidationError as e:
    check("license_id" in e.error_dict, "validation names the field: %r" % e.error_dict)
created = admin.action.package_create(**new)
check(created["name"] == "diem-do-thu", "package_create")
try:
    admin.action.package_create(**new)
    check(False, "a name in use")
except ckanapi.ValidationError:
    pass
patched = admin.action.package_patch(id="diem-do-thu", title="Điểm đo đã sửa")
check(patched["title"] == "Điểm đo đã sửa" and patched["tags"][0]["name"] == "thử nghiệm",
      "package_patch keeps what it does not name")
updated = admin.action.package_update(**dict(new, title="Cập nhật", tags=[]))
check(updated["title"] == "Cập nhật" and updated["tags"] == [], "package_update")
check(anon.action.package_search(rows=1000)["count"] == total + 1, "the new one is found")
admin.action.package_delete(id="diem-do-thu")
try:
    anon.action.package_show(id="diem-do-thu")
    check(False, "deleted")
except ckanapi.NotFound:
    pass
check(anon.action.package_search(rows=1000)["count"] == total, "deleted from search")
print("ok", total)
