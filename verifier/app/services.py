"""The running verifier's long-lived resources, opened and closed together (HTTP app and CLI alike).

Order of start: metrics -> ledger (writer thread + reader threads) -> one aiohttp ClientSession with explicit
timeouts -> collateral cache over our own PCS/PCCS client (its table behind the ledger's threads) -> NRAS
client -> dcap-qvl worker pool -> the event-loop lag watcher -> the engine's worker thread (``app.offload``).
Closing happens in reverse. The limits
(per-key rate, per-gateway upstream budget, in-flight bytes) and the record service live here too.
"""

from __future__ import annotations

import os
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from verifier.adapters.channel import Channel, Channels
from verifier.adapters.collateral_cache import CollateralCache
from verifier.adapters.dcap.pool import DcapPool
from verifier.adapters.gateway import CallBudget, GatewayClient, Retry
from verifier.adapters.nras_client import NrasClient
from verifier.adapters.pcs import PcsClient
from verifier.adapters.recorder import Recorder
from verifier.adapters.tls_peer import ObservedResponse
from verifier.adapters.tls_trust import connector_ssl, upstream_ssl_context
from verifier.app.jobs import Jobs
from verifier.app.keys import ApiKey, KeyStore
from verifier.app.limits import ByteAdmission, RateLimiter, UpstreamBudget
from verifier.app.metrics import Metrics, lag_watcher
from verifier.app.offload import Offloader
from verifier.app.profiles import anchors_for, refs_for
from verifier.app.records import Records
from verifier.app.settings import Settings
from verifier.app.signing_keys import load_keys
from verifier.app.verify_pool import VerifierPool
from verifier.appraise.policy import Policy, default_policy, load_policy
from verifier.appraise.refs import Refs
from verifier.core.checkpoint import CheckpointError, NoteSigner
from verifier.core.errors import ConfigError
from verifier.core.trust import TrustAnchors
from verifier.engine.evaluate import Context
from verifier.verify.memo import VerificationMemo


@dataclass(slots=True)
class Services:
    settings: Settings
    policy: Policy
    anchors: TrustAnchors
    recorder: Recorder
    session: aiohttp.ClientSession
    pool: DcapPool
    collateral: CollateralCache
    nras: NrasClient | None
    clock: Callable[[], float]
    refs: Refs | None = None
    cpu: Executor | None = None  # CPU-heavy verification (SPDM, NRAS, signatures) runs here, never on the loop
    memo: VerificationMemo = field(default_factory=VerificationMemo)  # validated chains and keys, this process
    metrics: Metrics = field(default_factory=Metrics)
    limiter: RateLimiter = field(default_factory=lambda: RateLimiter(0, 1))
    budget: UpstreamBudget = field(default_factory=lambda: UpstreamBudget(0))
    admission: ByteAdmission = field(default_factory=lambda: ByteAdmission(1 << 40, wait=0))
    offloader: Offloader | None = None  # None: the engine runs on the caller's loop
    log_signer: NoteSigner | None = None  # the transparency log's checkpoint key (None: no checkpoints are signed)
    ear_keys: tuple[Ed25519PrivateKey, ...] = ()  # EAR signing keys, oldest first; the last signs (empty: no EARs)
    verifiers: VerifierPool | None = None  # verifier worker processes (the proxy's --verify-workers); None: in-process
    ssl_context: ssl.SSLContext | None = None  # upstream TLS trust (``Settings.ca_file``); None: the system store
    records: Records = field(init=False)
    channels: Channels = field(init=False)  # the proxy's one-connection channels, lent per exchange
    jobs: Jobs = field(init=False)  # batch re-verification jobs (app.jobs)

    def __post_init__(self) -> None:
        self.records = Records(self)
        self.channels = Channels(ssl_context=self.ssl_context, read_timeout=self.settings.upstream_timeout)
        self.jobs = Jobs(self)

    def context(self, *, now: int | None = None) -> Context:
        return Context(
            policy=self.policy,
            now=int(self.clock()) if now is None else now,
            anchors=self.anchors,
            quotes=self.pool,
            collateral=self.collateral,
            nras=self.nras,
            dcap_version=self.pool.version(),
            refs=self.refs,
            cpu=self.cpu,
            memo=self.memo,
        )

    def offline_context(self, *, now: int) -> Context:
        """Re-evaluation of stored evidence: nothing is fetched."""
        return Context(
            policy=self.policy,
            now=now,
            anchors=self.anchors,
            quotes=self.pool,
            dcap_version=self.pool.version(),
            refs=self.refs,
            cpu=self.cpu,
            memo=self.memo,
        )

    def gateway(
        self,
        base_url: str,
        *,
        api_key: str | None,
        calls: CallBudget | None = None,
        reserve: Callable[[int], Awaitable[None]] | None = None,
        channel: Channel | None = None,
    ) -> GatewayClient:
        """A gateway client on the shared session, or on ``channel`` (the proxy's: the completion's connection, whose
        peer log it shares, so that the signature and report are fetched on that connection when it is still open)."""
        s = self.settings
        return GatewayClient(
            channel.session if channel is not None else self.session,
            base_url,
            api_key=api_key,
            timeout=s.upstream_timeout,
            retry=Retry(deadline=s.signature_deadline),
            calls=calls,
            reserve=reserve,
            observe=self.metrics.upstream,
            peers=channel.peers if channel is not None else None,
            decompress=channel is None,
            on_finished=channel.release if channel is not None else None,
        )

    def channel(self) -> Channel:
        """A one-connection channel to the gateway for one exchange (release it when its verification is done)."""
        return self.channels.lend()

    async def authenticate(self, secret: str) -> ApiKey | None:
        """The active API key this secret is (looked up on a ledger reader thread), or None."""
        return await self.recorder.read(lambda ledger: KeyStore(ledger).authenticate(secret))


@asynccontextmanager
async def open_services(settings: Settings, *, clock: Callable[[], float] = time.time) -> AsyncIterator[Services]:
    policy = load_policy(settings.policy_path) if settings.policy_path else default_policy()
    anchors = anchors_for(settings.trust_profile)
    refs = refs_for(settings.trust_profile, settings.refs_path)
    ssl_context = upstream_ssl_context(settings.ca_file)  # every upstream: gateway, PCS/PCCS, NRAS
    metrics = Metrics()
    try:
        log_signer = NoteSigner(settings.log_origin, load_keys(settings.log_key_path, create=True)[-1])
    except CheckpointError as exc:
        raise ConfigError(f"log_origin: {exc}") from None
    ear_keys = load_keys(settings.ear_key_path, create=True)
    async with AsyncExitStack() as stack:
        cpu = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="verify-cpu")
        stack.callback(cpu.shutdown, wait=False)
        recorder = await Recorder.open(
            settings.db_path,
            trust_profile=anchors.name,
            busy_timeout=settings.db_busy_timeout,
            observe_write=metrics.ledger_write_seconds.observe,
        )
        stack.push_async_callback(recorder.close)
        recorder.ledger.log_signer = log_signer  # before any write: every save signs the new tree head
        timeout = aiohttp.ClientTimeout(total=settings.upstream_timeout, connect=min(10.0, settings.upstream_timeout))
        session = await stack.enter_async_context(
            aiohttp.ClientSession(
                timeout=timeout,
                headers={"User-Agent": "attestation-verifier"},
                connector=aiohttp.TCPConnector(ssl=connector_ssl(ssl_context)),
                response_class=ObservedResponse,  # tls.json: the peer of each gateway answer
            )
        )
        fetcher = PcsClient(
            session,
            settings.pcs_url,
            pccs=settings.pccs,
            timeout=settings.upstream_timeout,
            root_ca_crl_url=settings.root_ca_crl_url,
            observe=metrics.upstream,
        )
        collateral = CollateralCache(recorder.collateral_store(), fetcher, offline=settings.offline)
        nras = (
            None
            if settings.offline
            else NrasClient(session, settings.nras_url, timeout=settings.upstream_timeout, observe=metrics.upstream)
        )
        pool = await stack.enter_async_context(DcapPool(size=settings.dcap_workers, timeout=settings.dcap_timeout))
        metrics.watch_dcap(pool.stats)
        await stack.enter_async_context(lag_watcher(metrics))
        offloader = Offloader()
        stack.callback(offloader.close)
        services = Services(
            settings=settings,
            policy=policy,
            anchors=anchors,
            recorder=recorder,
            session=session,
            pool=pool,
            collateral=collateral,
            nras=nras,
            clock=clock,
            refs=refs,
            cpu=cpu,
            metrics=metrics,
            limiter=RateLimiter(settings.rate_per_minute, settings.rate_burst),
            budget=UpstreamBudget(settings.upstream_per_minute),
            admission=ByteAdmission(settings.max_inflight_bytes, wait=settings.admission_wait),
            offloader=offloader,
            log_signer=log_signer,
            ear_keys=ear_keys,
            ssl_context=ssl_context,
        )
        stack.push_async_callback(services.channels.close)
        stack.push_async_callback(services.jobs.close)  # running jobs stop (resumable) before anything they use closes
        yield services
