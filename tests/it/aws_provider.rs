//! The AWS provider against moto's EC2 server, and against tiny local HTTP
//! servers for the failure modes moto cannot produce. All traffic goes to 127.0.0.1.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use appgrid::cloud::aws::{AwsCloud, AwsOverrides};
use appgrid::cloud::{
    Cloud, CloudError, InstanceStatus, LaunchRequest, Observed, Owner, ResolvedRule,
    ResolvedSource, TAG_ADDRESS, TAG_APP, TAG_LINEAGE, TAG_SPEC, encode_batch_address,
};
use appgrid::graph::{Group, InstanceSpec, KeyPairSpec, ResourceAddress, Role, SecurityGroupSpec};
use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::moto::{self, Moto, code, owner};

const PUBLIC_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBNHZpeEnssYry5YMAtcVS6MZ3uq5Cg5rlUWyzae9uKK appgrid-test";

fn web(indices: &[u32]) -> Vec<ResourceAddress> {
    indices
        .iter()
        .map(|&i| ResourceAddress::instance(Role::Web, i))
        .collect()
}

fn instance_spec(owner: &Owner, zone: &str) -> InstanceSpec {
    InstanceSpec {
        role: Role::Web,
        instance_type: "t3.small".to_string(),
        image: "ami-12345678".to_string(),
        zone: zone.to_string(),
        key_name: format!("appgrid-{}", owner.app),
        group: Group::Web,
        user_data: "#!/bin/sh\necho hello\n".to_string(),
    }
}

fn group_spec(owner: &Owner, group: Group) -> SecurityGroupSpec {
    SecurityGroupSpec {
        name: format!("{}-{}", owner.app, group.as_str()),
        description: format!("appgrid {} {}", owner.app, group.as_str()),
        rules: Vec::new(),
    }
}

fn request(owner: &Owner, addresses: Vec<ResourceAddress>, group_id: &str) -> LaunchRequest {
    LaunchRequest {
        owner: owner.clone(),
        spec: instance_spec(owner, "us-east-1b"),
        spec_hash: "0123456789abcdef".to_string(),
        client_token: format!("{}-{}", owner.lineage, addresses[0]),
        addresses,
        group_id: group_id.to_string(),
    }
}

fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().to_string(),
                t.value().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn app_filter(owner: &Owner) -> Filter {
    Filter::builder()
        .name(format!("tag:{TAG_APP}"))
        .values(&owner.app)
        .build()
}

/// A web security group for `owner`'s launches.
async fn web_group(cloud: &AwsCloud, owner: &Owner) -> String {
    cloud
        .create_security_group(owner, Group::Web, &group_spec(owner, Group::Web))
        .await
        .unwrap()
}

/// Every instance tagged with `owner`'s app, as an independent client sees them.
async fn app_instances(moto: &Moto, owner: &Owner) -> Vec<aws_sdk_ec2::types::Instance> {
    let out = moto
        .sdk()
        .describe_instances()
        .filters(app_filter(owner))
        .send()
        .await
        .unwrap();
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .cloned()
        .collect()
}

#[tokio::test]
async fn refresh_of_an_app_with_nothing_is_empty() {
    let moto = moto::shared();
    let cloud = moto.cloud().await;
    let observed = cloud.refresh(&owner("empty")).await.unwrap();
    assert_eq!(observed, Observed::default());
    let calls = cloud.calls();
    assert_eq!(
        (
            calls.describe_instances,
            calls.describe_security_groups,
            calls.describe_key_pairs
        ),
        (1, 1, 1)
    );
    assert_eq!(calls.total(), 3);
}

#[tokio::test]
async fn five_identical_instances_are_one_run_instances_call() {
    let moto = moto::shared();
    let cloud = moto.cloud().await;
    let owner = owner("launch5");
    let group_id = web_group(&cloud, &owner).await;
    let addresses = web(&[0, 3, 6, 9, 12]);
    let before = cloud.calls();
    let launched = cloud
        .launch(&request(&owner, addresses.clone(), &group_id))
        .await
        .unwrap();
    let calls = cloud.calls();
    assert_eq!(calls.run_instances - before.run_instances, 1);
    assert_eq!(
        calls.create_tags - before.create_tags,
        0,
        "no call per instance: the launch tag and the launch index say each address"
    );
    assert_eq!(
        launched.iter().map(|l| l.address).collect::<Vec<_>>(),
        addresses
    );
    assert!(launched.iter().all(|l| l.zone == "us-east-1b"));

    // What an independent client sees.
    let instances = app_instances(moto, &owner).await;
    assert_eq!(instances.len(), 5);
    let mut seen = BTreeSet::new();
    for instance in instances {
        let tags = tag_map(instance.tags());
        let id = instance.instance_id().unwrap();
        let mine = launched.iter().find(|l| l.id == id).expect("launched id");
        assert_eq!(
            instance.instance_type().map(|t| t.as_str()),
            Some("t3.small")
        );
        assert_eq!(
            instance.placement().and_then(|p| p.availability_zone()),
            Some("us-east-1b")
        );
        assert_eq!(
            instance.key_name(),
            Some(format!("appgrid-{}", owner.app).as_str())
        );
        assert_eq!(tags[TAG_APP], owner.app);
        assert_eq!(tags[TAG_LINEAGE], owner.lineage);
        assert_eq!(tags[TAG_SPEC], "0123456789abcdef");
        assert_eq!(tags["appgrid:role"], "web");
        assert_eq!(tags[TAG_ADDRESS], "web[0:15:3]");
        assert_eq!(tags["Name"], format!("{}-web[0:15:3]", owner.app));
        let index = instance.ami_launch_index().unwrap() as usize;
        assert_eq!(
            addresses[index], mine.address,
            "launch index k is addresses[k]"
        );
        assert!(
            instance
                .security_groups()
                .iter()
                .any(|g| g.group_id() == Some(group_id.as_str())),
            "instance is in the app's group"
        );
        seen.insert(mine.address);
    }
    assert_eq!(seen.len(), 5);

    let ids: Vec<String> = launched.iter().map(|l| l.id.clone()).collect();
    let running = cloud.wait_running(&ids).await.unwrap();
    assert_eq!(
        running.iter().map(|i| &i.id).collect::<Vec<_>>(),
        ids.iter().collect::<Vec<_>>()
    );
    assert!(running.iter().all(|i| i.status == InstanceStatus::Running));
    assert_eq!(
        running.iter().map(|i| i.address).collect::<Vec<_>>(),
        addresses.iter().copied().map(Some).collect::<Vec<_>>()
    );

    let observed = cloud.refresh(&owner).await.unwrap();
    let mut found: Vec<_> = observed
        .instances
        .iter()
        .map(|i| (i.address, i.id.clone()))
        .collect();
    found.sort();
    let mut expected: Vec<_> = launched
        .iter()
        .map(|l| (Some(l.address), l.id.clone()))
        .collect();
    expected.sort();
    assert_eq!(found, expected);
    assert!(
        observed
            .instances
            .iter()
            .all(|i| i.spec_hash.as_deref() == Some("0123456789abcdef")
                && i.instance_type == "t3.small"
                && i.zone == "us-east-1b")
    );
}

/// An interrupted launch leaves only the batch tag written by RunInstances;
/// refresh resolves each instance's address from its launch index.
#[tokio::test]
async fn refresh_decodes_batch_tags_written_at_launch() {
    let moto = moto::shared();
    let cloud = moto.cloud().await;
    let owner = owner("batchtag");
    let tags = TagSpecification::builder()
        .resource_type(ResourceType::Instance)
        .tags(Tag::builder().key(TAG_APP).value(&owner.app).build())
        .tags(
            Tag::builder()
                .key(TAG_LINEAGE)
                .value(&owner.lineage)
                .build(),
        )
        .tags(Tag::builder().key(TAG_ADDRESS).value("web[2:10:2]").build())
        .build();
    moto.sdk()
        .run_instances()
        .image_id("ami-12345678")
        .min_count(4)
        .max_count(4)
        .tag_specifications(tags)
        .send()
        .await
        .unwrap();
    let observed = cloud.refresh(&owner).await.unwrap();
    let addresses: BTreeSet<_> = observed.instances.iter().map(|i| i.address).collect();
    assert_eq!(
        addresses,
        web(&[2, 4, 6, 8]).into_iter().map(Some).collect()
    );
}

/// 2,500 instances launched in three calls (1,000 + 1,000 + 500, tagged at
/// launch with the batch form only) are found by refresh with their exact
/// addresses. moto counts MaxResults in reservations, not instances, so these
/// three reservations come back in one page: one call, within ⌈2,500/1,000⌉.
/// That EC2's per-instance paging gives exactly ⌈N/1,000⌉ calls is proven
/// against a local server with EC2's semantics in `refresh_pages_by_1000_instances`.
#[tokio::test]
async fn refresh_of_2500_instances_launched_in_three_calls() {
    let moto = Moto::dedicated();
    // moto takes a while to describe 2,500 instances on a loaded machine: the
    // test is about calls, not moto's speed.
    let cloud = AwsCloud::connect_with(
        &moto.provider(),
        AwsOverrides {
            operation_timeout: Some(std::time::Duration::from_secs(600)),
            ..moto::test_overrides()
        },
    )
    .await
    .expect("connect to moto");
    let owner = owner("big");
    let sdk = moto.sdk();
    for (start, count) in [(0u32, 1000u32), (1000, 1000), (2000, 500)] {
        let addresses = web(&(start..start + count).collect::<Vec<_>>());
        let tags = TagSpecification::builder()
            .resource_type(ResourceType::Instance)
            .tags(Tag::builder().key(TAG_APP).value(&owner.app).build())
            .tags(
                Tag::builder()
                    .key(TAG_LINEAGE)
                    .value(&owner.lineage)
                    .build(),
            )
            .tags(
                Tag::builder()
                    .key(TAG_ADDRESS)
                    .value(encode_batch_address(&addresses))
                    .build(),
            )
            .build();
        let out = sdk
            .run_instances()
            .image_id("ami-12345678")
            .min_count(count as i32)
            .max_count(count as i32)
            .tag_specifications(tags)
            .send()
            .await
            .unwrap();
        assert_eq!(out.instances().len(), count as usize);
    }
    let observed = cloud.refresh(&owner).await.unwrap();
    let calls = cloud.calls();
    assert_eq!(
        calls.describe_instances, 1,
        "three reservations are one moto page"
    );
    assert!(calls.describe_instances <= 2500u64.div_ceil(1000));
    assert_eq!(observed.instances.len(), 2500);
    let addresses: BTreeSet<_> = observed
        .instances
        .iter()
        .filter_map(|i| i.address)
        .collect();
    assert_eq!(
        addresses,
        web(&(0..2500).collect::<Vec<_>>()).into_iter().collect()
    );
}

/// Against a local server that pages DescribeInstances the way EC2 documents
/// it (MaxResults counts instances), 2,500 instances take exactly three calls,
/// each asking for 1,000 and passing on the previous page's token.
#[tokio::test]
async fn refresh_pages_by_1000_instances() {
    const N: usize = 2500;
    let (endpoint, requests) = fake_ec2(Arc::new(|body: &str| {
        let param = |name: &str| {
            body.split('&')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .map(str::to_string)
        };
        let action = param("Action").unwrap_or_default();
        let body = match action.as_str() {
            "DescribeInstances" => {
                let max: usize = param("MaxResults")
                    .and_then(|m| m.parse().ok())
                    .unwrap_or(N);
                let start: usize = param("NextToken")
                    .and_then(|t| t.strip_prefix("from-").and_then(|n| n.parse().ok()))
                    .unwrap_or(0);
                let end = (start + max).min(N);
                ec2_instances_page(start..end, (end < N).then(|| format!("from-{end}")))
            }
            "DescribeSecurityGroups" => ec2_response(&action, "<securityGroupInfo/>"),
            "DescribeKeyPairs" => ec2_response(&action, "<keySet/>"),
            _ => return ("400 Bad Request", ec2_error("InvalidAction", &action)),
        };
        ("200 OK", body)
    }))
    .await;
    let cloud = AwsCloud::connect_with(&moto::provider_at(&endpoint), overrides(1))
        .await
        .unwrap();
    let observed = cloud.refresh(&owner("paging")).await.unwrap();
    assert_eq!(observed.instances.len(), N);
    let addresses: BTreeSet<_> = observed
        .instances
        .iter()
        .filter_map(|i| i.address)
        .collect();
    assert_eq!(addresses.len(), N);
    assert_eq!(cloud.calls().describe_instances, N.div_ceil(1000) as u64);
    let pages: Vec<String> = requests
        .lock()
        .unwrap()
        .iter()
        .filter(|b| b.contains("Action=DescribeInstances"))
        .cloned()
        .collect();
    assert_eq!(pages.len(), 3);
    assert!(
        pages.iter().all(|b| b.contains("MaxResults=1000")),
        "{pages:?}"
    );
    assert!(
        pages
            .iter()
            .all(|b| b.contains("Filter.1.Name=tag%3Aappgrid%3Aapp")),
        "{pages:?}"
    );
    assert!(
        !pages[0].contains("NextToken")
            && pages[1].contains("NextToken=from-1000")
            && pages[2].contains("NextToken=from-2000")
    );
}

/// A DescribeInstances page of instances `range`, 500 to a reservation.
fn ec2_instances_page(range: std::ops::Range<usize>, next: Option<String>) -> String {
    let mut xml = String::from("<reservationSet>");
    let mut open = false;
    for i in range {
        if !open || i % 500 == 0 {
            if open {
                xml.push_str("</instancesSet></item>");
            }
            xml.push_str(&format!("<item><reservationId>r-{:08x}</reservationId><ownerId>123456789012</ownerId><instancesSet>", i / 500));
            open = true;
        }
        xml.push_str(&format!(
            "<item><instanceId>i-{i:08x}</instanceId><imageId>ami-12345678</imageId>\
             <instanceState><code>16</code><name>running</name></instanceState>\
             <instanceType>t3.small</instanceType><amiLaunchIndex>{}</amiLaunchIndex>\
             <placement><availabilityZone>us-east-1a</availabilityZone></placement>\
             <tagSet><item><key>{TAG_ADDRESS}</key><value>web[{}:{}:1]</value></item></tagSet></item>",
            i % 500,
            i - i % 500,
            i - i % 500 + 500,
        ));
    }
    if open {
        xml.push_str("</instancesSet></item>");
    }
    xml.push_str("</reservationSet>");
    if let Some(token) = next {
        xml.push_str(&format!("<nextToken>{token}</nextToken>"));
    }
    ec2_response("DescribeInstances", &xml)
}

fn ec2_response(action: &str, inner: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{action}Response \
         xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>x</requestId>{inner}</{action}Response>"
    )
}

fn ec2_error(code: &str, message: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code>\
         <Message>{message}</Message></Error></Errors><RequestID>x</RequestID></Response>"
    )
}

#[tokio::test]
async fn security_group_create_is_idempotent_and_refuses_foreign_groups() {
    let moto = moto::shared();
    let cloud = moto.cloud().await;
    let owner = owner("sgidem");
    let spec = group_spec(&owner, Group::Db);
    let first = cloud
        .create_security_group(&owner, Group::Db, &spec)
        .await
        .unwrap();
    let second = cloud
        .create_security_group(&owner, Group::Db, &spec)
        .await
        .unwrap();
    assert_eq!(first, second);
    let observed = cloud.refresh(&owner).await.unwrap();
    assert_eq!(observed.groups.len(), 1);
    assert_eq!(observed.groups[0].id, first);
    assert_eq!(observed.groups[0].name, spec.name);
    assert_eq!(observed.groups[0].group, Some(Group::Db));

    // Same name, but made by someone else (no tags): refused, with the reason.
    let foreign = group_spec(&owner, Group::Cache);
    let theirs = moto
        .sdk()
        .create_security_group()
        .group_name(&foreign.name)
        .description("not appgrid's")
        .send()
        .await
        .unwrap();
    let err = cloud
        .create_security_group(&owner, Group::Cache, &foreign)
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidGroup.Duplicate");
    let text = err.to_string();
    assert!(
        text.contains(&foreign.name) && text.contains(theirs.group_id().unwrap()),
        "{text}"
    );
    assert!(text.contains("is not this app's"), "{text}");
}

#[tokio::test]
async fn set_ingress_authorizes_and_revokes_exactly() {
    let moto = moto::shared();
    let cloud = moto.cloud().await;
    let owner = owner("ingress");
    let db = cloud
        .create_security_group(&owner, Group::Db, &group_spec(&owner, Group::Db))
        .await
        .unwrap();
    let web = web_group(&cloud, &owner).await;
    let ssh = ResolvedRule {
        port: 22,
        from: ResolvedSource::Cidr("0.0.0.0/0".into()),
    };
    let pg = ResolvedRule {
        port: 5432,
        from: ResolvedSource::GroupId(web.clone()),
    };
    let admin = ResolvedRule {
        port: 5432,
        from: ResolvedSource::Cidr("10.0.0.0/8".into()),
    };

    let sdk = moto.sdk();
    let rules_of = |id: String| {
        let sdk = sdk.clone();
        async move {
            let out = sdk
                .describe_security_groups()
                .group_ids(id)
                .send()
                .await
                .unwrap();
            let mut rules = BTreeSet::new();
            for p in out.security_groups()[0].ip_permissions() {
                assert_eq!(p.ip_protocol(), Some("tcp"));
                assert_eq!(p.from_port(), p.to_port());
                let port = p.from_port().unwrap() as u16;
                for r in p.ip_ranges() {
                    rules.insert(ResolvedRule {
                        port,
                        from: ResolvedSource::Cidr(r.cidr_ip().unwrap().into()),
                    });
                }
                for g in p.user_id_group_pairs() {
                    rules.insert(ResolvedRule {
                        port,
                        from: ResolvedSource::GroupId(g.group_id().unwrap().into()),
                    });
                }
            }
            rules
        }
    };

    let first = [ssh.clone(), pg.clone()];
    cloud.set_ingress(&db, &first, &[]).await.unwrap();
    assert_eq!(rules_of(db.clone()).await, first.iter().cloned().collect());
    assert_eq!(
        cloud.calls().authorize_security_group_ingress,
        1,
        "all new rules in one call"
    );

    // Stale `previous`: the rules already there are not an error.
    cloud.set_ingress(&db, &first, &[]).await.unwrap();
    assert_eq!(rules_of(db.clone()).await, first.iter().cloned().collect());

    let second = [pg.clone(), admin.clone()];
    let before = cloud.calls();
    cloud.set_ingress(&db, &second, &first).await.unwrap();
    let calls = cloud.calls();
    assert_eq!(rules_of(db.clone()).await, second.iter().cloned().collect());
    assert_eq!(
        calls.authorize_security_group_ingress - before.authorize_security_group_ingress,
        1
    );
    assert_eq!(
        calls.revoke_security_group_ingress - before.revoke_security_group_ingress,
        1
    );

    // Revoking what is already gone is not an error either.
    cloud
        .set_ingress(&db, &[], &[ssh, pg, admin])
        .await
        .unwrap();
    assert_eq!(rules_of(db).await, BTreeSet::new());
}

#[tokio::test]
async fn deleting_groups_missing_or_present_succeeds() {
    let moto = moto::shared();
    let cloud = moto.cloud().await;
    let owner = owner("sgdel");
    cloud
        .delete_security_group("sg-0123456789abcdef0")
        .await
        .unwrap();
    let id = cloud
        .create_security_group(&owner, Group::Lb, &group_spec(&owner, Group::Lb))
        .await
        .unwrap();
    cloud.delete_security_group(&id).await.unwrap();
    cloud.delete_security_group(&id).await.unwrap();
    assert!(cloud.refresh(&owner).await.unwrap().groups.is_empty());
    assert_eq!(cloud.calls().delete_security_group, 3);
}

#[tokio::test]
async fn key_pair_import_is_idempotent_and_refuses_foreign_keys() {
    let moto = moto::shared();
    let cloud = moto.cloud().await;
    let owner = owner("keys");
    let spec = KeyPairSpec {
        name: format!("appgrid-{}", owner.app),
        public_key_path: "id.pub".into(),
    };
    assert_eq!(
        cloud
            .import_key_pair(&owner, &spec, PUBLIC_KEY)
            .await
            .unwrap(),
        spec.name
    );
    assert_eq!(
        cloud
            .import_key_pair(&owner, &spec, PUBLIC_KEY)
            .await
            .unwrap(),
        spec.name
    );
    let observed = cloud.refresh(&owner).await.unwrap();
    let key = observed.key_pair.expect("the app's key pair");
    assert_eq!(key.name, spec.name);
    assert!(key.fingerprint.is_some());

    let foreign = KeyPairSpec {
        name: format!("someone-else-{}", owner.app),
        public_key_path: "id.pub".into(),
    };
    moto.sdk()
        .import_key_pair()
        .key_name(&foreign.name)
        .public_key_material(aws_sdk_ec2::primitives::Blob::new(PUBLIC_KEY))
        .send()
        .await
        .unwrap();
    let err = cloud
        .import_key_pair(&owner, &foreign, PUBLIC_KEY)
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidKeyPair.Duplicate");
    let text = err.to_string();
    assert!(
        text.contains(&format!("`{}`", foreign.name)) && text.contains("delete-key-pair"),
        "{text}"
    );

    cloud.delete_key_pair(&spec.name).await.unwrap();
    cloud.delete_key_pair(&spec.name).await.unwrap();
    assert_eq!(cloud.refresh(&owner).await.unwrap().key_pair, None);
}

#[tokio::test]
async fn terminate_skips_ids_that_are_gone() {
    let moto = moto::shared();
    let cloud = moto.cloud().await;
    let owner = owner("term");
    cloud
        .terminate(&["i-0123456789abcdef0".to_string()])
        .await
        .unwrap();

    let group_id = web_group(&cloud, &owner).await;
    let launched = cloud
        .launch(&request(&owner, web(&[0, 1]), &group_id))
        .await
        .unwrap();
    let mut ids: Vec<String> = launched.iter().map(|l| l.id.clone()).collect();
    ids.insert(1, "i-0fedcba9876543210".to_string());
    cloud.terminate(&ids).await.unwrap();
    assert!(cloud.refresh(&owner).await.unwrap().instances.is_empty());
    let states: Vec<_> = app_instances(moto, &owner)
        .await
        .iter()
        .map(|i| {
            i.state()
                .and_then(|s| s.name())
                .map(|n| n.as_str().to_string())
        })
        .collect();
    assert_eq!(states.len(), 2);
    assert!(
        states
            .iter()
            .all(|s| matches!(s.as_deref(), Some("shutting-down" | "terminated"))),
        "{states:?}"
    );
}

#[tokio::test]
async fn image_names_resolve_once_and_unknown_names_fail_clearly() {
    let moto = moto::shared();
    let cloud = moto.cloud().await;
    let owner = owner("images");
    let group_id = web_group(&cloud, &owner).await;
    let name = format!("appgrid-img-{}", owner.app);
    let registered = moto
        .sdk()
        .register_image()
        .name(&name)
        .root_device_name("/dev/xvda")
        .send()
        .await
        .unwrap();
    let mut req = request(&owner, web(&[0]), &group_id);
    req.spec.image = name.clone();
    let first = cloud.launch(&req).await.unwrap();
    let second = cloud.launch(&req).await.unwrap();
    assert_eq!(first[0].image_id.as_deref(), registered.image_id());
    assert_eq!(second[0].image_id.as_deref(), registered.image_id());
    assert_eq!(cloud.calls().describe_images, 1, "resolved once per name");

    req.spec.image = "debian-99".to_string();
    let before = cloud.calls();
    let err = cloud.launch(&req).await.unwrap_err();
    assert_eq!(
        err,
        CloudError::ImageNotFound {
            image: "debian-99".into(),
            region: moto::REGION.into()
        }
    );
    assert_eq!(cloud.calls().run_instances, before.run_instances);
}

fn overrides(max_attempts: u32) -> AwsOverrides {
    AwsOverrides {
        max_attempts: Some(max_attempts),
        ..moto::test_overrides()
    }
}

#[tokio::test]
async fn an_unreachable_endpoint_fails_after_the_bounded_attempts() {
    let port = moto::free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let cloud = AwsCloud::connect_with(&moto::provider_at(&endpoint), overrides(3))
        .await
        .unwrap();
    let err = cloud
        .terminate(&["i-0123456789abcdef0".into()])
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "cannot reach the EC2 API at {endpoint} (TerminateInstances, 3 attempts): connection \
             refused; check `endpoint` in [provider] or AWS_ENDPOINT_URL_EC2"
        )
    );
}

type Handler = Arc<dyn Fn(&str) -> (&'static str, String) + Send + Sync>;

/// A local HTTP server on 127.0.0.1 answering each request with what
/// `handler` makes of its body; returns its endpoint and the bodies it saw.
async fn fake_ec2(handler: Handler) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let (seen, handler) = (seen.clone(), handler.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 16384];
                // Read the head, then as much body as Content-Length says.
                let body_start = loop {
                    let n = stream.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..body_start]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while buf.len() < body_start + length {
                    let n = stream.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let body = String::from_utf8_lossy(&buf[body_start..]).into_owned();
                let (status, answer) = handler(&body);
                seen.lock().unwrap().push(body);
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/xml;charset=UTF-8\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (endpoint, requests)
}

/// A server answering every request with `status` and the EC2 error `code`.
async fn failing_ec2(
    status: &'static str,
    code: &'static str,
    message: &'static str,
) -> (String, Arc<Mutex<Vec<String>>>) {
    fake_ec2(Arc::new(move |_| (status, ec2_error(code, message)))).await
}

#[tokio::test]
async fn throttling_is_retried_exactly_max_attempts_times() {
    let (endpoint, requests) = failing_ec2(
        "503 Service Unavailable",
        "RequestLimitExceeded",
        "Rate exceeded",
    )
    .await;
    let cloud = AwsCloud::connect_with(&moto::provider_at(&endpoint), overrides(3))
        .await
        .unwrap();
    let err = cloud
        .terminate(&["i-0123456789abcdef0".into()])
        .await
        .unwrap_err();
    assert_eq!(
        err,
        CloudError::Api {
            operation: "TerminateInstances".into(),
            code: "RequestLimitExceeded".into(),
            message: "Rate exceeded".into(),
        }
    );
    assert_eq!(
        err.to_string(),
        "TerminateInstances failed: RequestLimitExceeded: Rate exceeded"
    );
    assert_eq!(requests.lock().unwrap().len(), 3);
    assert_eq!(
        cloud.calls().terminate_instances,
        1,
        "the SDK's retries are one logical call"
    );
}

#[tokio::test]
async fn rejected_credentials_are_a_credentials_error() {
    let (endpoint, requests) = failing_ec2(
        "401 Unauthorized",
        "AuthFailure",
        "AWS was not able to validate the provided access credentials",
    )
    .await;
    let cloud = AwsCloud::connect_with(&moto::provider_at(&endpoint), overrides(3))
        .await
        .unwrap();
    let err = cloud.refresh(&owner("authfail")).await.unwrap_err();
    let CloudError::Credentials(text) = &err else {
        panic!("expected a credentials error, got {err:?}")
    };
    assert!(text.contains("AuthFailure"), "{text}");
    assert!(
        text.contains("AWS was not able to validate the provided access credentials"),
        "{text}"
    );
    assert!(text.contains("rejected"), "{text}");
    assert!(
        requests.lock().unwrap().len() <= 3,
        "not retried: one request per listing"
    );
}

const CHILD: &str = "APPGRID_IT_CHILD";

/// The credential chain reads the process environment, so this runs in a child
/// process of this test binary with an environment that holds no credentials.
#[test]
fn missing_credentials_name_where_they_were_looked_for() {
    if std::env::var_os(CHILD).is_some() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let provider = moto::provider_at(&format!("http://127.0.0.1:{}", moto::free_port()));
        let err = runtime.block_on(AwsCloud::connect(&provider)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no AWS credentials found: looked in the environment (AWS_ACCESS_KEY_ID, \
             AWS_SECRET_ACCESS_KEY), the shared files ~/.aws/credentials and ~/.aws/config \
             (profile `default`), SSO, web identity, the ECS container endpoint and EC2 instance \
             metadata; set AWS_PROFILE, run `aws configure`, or export AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY"
        );
        return;
    }
    run_in_child(
        "aws_provider::missing_credentials_name_where_they_were_looked_for",
        &[],
    );
}

/// Runs one test of this binary in a child process whose environment holds
/// nothing but `env`, an empty home and no AWS files (and instance metadata
/// disabled); asserts that the child ran it and it passed.
fn run_in_child(test: &str, env: &[(&str, &str)]) {
    let home = std::env::temp_dir().join(format!("appgrid-it-home-{}", std::process::id()));
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--test-threads=1"])
        .env_clear()
        .env(CHILD, "1")
        .env("HOME", &home)
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("credentials"))
        .env("AWS_CONFIG_FILE", home.join("config"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("1 passed"),
        "the child ran the test:\n{stdout}"
    );
}

/// Credentials from the standard environment variables, and the attempt
/// bound from APPGRID_AWS_MAX_ATTEMPTS (in a child process: env is global).
#[test]
fn credentials_and_attempts_come_from_the_environment() {
    if std::env::var_os(CHILD).is_none() {
        run_in_child(
            "aws_provider::credentials_and_attempts_come_from_the_environment",
            &[
                ("AWS_ACCESS_KEY_ID", "test"),
                ("AWS_SECRET_ACCESS_KEY", "test"),
                ("APPGRID_AWS_MAX_ATTEMPTS", "2"),
            ],
        );
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (endpoint, requests) =
            failing_ec2("503 Service Unavailable", "Unavailable", "try later").await;
        let cloud = AwsCloud::connect(&moto::provider_at(&endpoint))
            .await
            .unwrap();
        let err = cloud
            .terminate(&["i-0123456789abcdef0".into()])
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "TerminateInstances failed: Unavailable: try later"
        );
        assert_eq!(requests.lock().unwrap().len(), 2);
    });
}

#[tokio::test]
async fn launch_of_no_addresses_makes_no_call() {
    let cloud = moto::shared().cloud().await;
    let owner = owner("nolaunch");
    let mut req = request(&owner, web(&[0]), "sg-0123");
    req.addresses.clear();
    assert!(cloud.launch(&req).await.unwrap().is_empty());
    assert!(cloud.wait_running(&[]).await.unwrap().is_empty());
    assert_eq!(cloud.calls().total(), 0);
}

/// moto never answers DependencyViolation; EC2 does while a group's instances
/// are still terminating. The delete is retried until the group is free.
#[tokio::test]
async fn deleting_a_group_in_use_is_retried_until_it_is_free() {
    let answered = Arc::new(Mutex::new(0u32));
    let count = answered.clone();
    let (endpoint, requests) = fake_ec2(Arc::new(move |_| {
        let mut n = count.lock().unwrap();
        *n += 1;
        if *n == 1 {
            let message = "resource sg-0123456789abcdef0 has a dependent object";
            ("400 Bad Request", ec2_error("DependencyViolation", message))
        } else {
            let inner = "<return>true</return>";
            ("200 OK", ec2_response("DeleteSecurityGroup", inner))
        }
    }))
    .await;
    let cloud = AwsCloud::connect_with(&moto::provider_at(&endpoint), overrides(1))
        .await
        .unwrap();
    cloud
        .delete_security_group("sg-0123456789abcdef0")
        .await
        .unwrap();
    assert_eq!(cloud.calls().delete_security_group, 2);
    let requests = requests.lock().unwrap();
    assert_eq!(requests.len(), 2);
    assert!(
        requests
            .iter()
            .all(|b| b.contains("Action=DeleteSecurityGroup"))
    );
}
