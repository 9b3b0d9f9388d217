--
-- PostgreSQL database dump
--

\restrict zSFIkPWUeCBelZXLzHEggkxYIRxYGGlKwpVxgat81BBh5o9ltKLm6TiPD3MWkV9

-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: callback_requests; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.callback_requests (
    id text NOT NULL,
    employee text NOT NULL,
    endpoint text NOT NULL,
    client text NOT NULL,
    route text NOT NULL,
    requested_at timestamp with time zone NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    next_try_at timestamp with time zone NOT NULL,
    max_attempts integer NOT NULL,
    retry_after integer NOT NULL,
    leg integer NOT NULL,
    state text NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    answered_by text,
    lease_owner text,
    lease_until timestamp with time zone
);


--
-- Name: calls; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.calls (
    call_id text NOT NULL,
    started_at timestamp with time zone,
    caller text,
    extension text,
    channel_id text,
    channel_name text,
    reasons text,
    ended_at timestamp with time zone,
    result text,
    detail text
);


--
-- Name: journal_spools; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.journal_spools (
    spool text NOT NULL,
    segment_no bigint NOT NULL,
    byte_offset bigint NOT NULL,
    shipped_at timestamp with time zone
);


--
-- Name: legs; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.legs (
    call_id text NOT NULL,
    leg integer NOT NULL,
    role text,
    targets text,
    department text,
    started_at timestamp with time zone,
    ended_at timestamp with time zone,
    outcome text,
    answered_by text,
    answered_at timestamp with time zone,
    cause text
);


--
-- Name: notice_calls; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.notice_calls (
    call_id text NOT NULL,
    seen_at timestamp with time zone NOT NULL,
    notices integer NOT NULL
);


--
-- Name: notice_settings; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.notice_settings (
    name text NOT NULL,
    value text NOT NULL
);


--
-- Name: notices; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.notices (
    call_id text NOT NULL,
    kind text NOT NULL,
    recipient text NOT NULL,
    language text NOT NULL,
    facts text NOT NULL,
    state text NOT NULL,
    created_at timestamp with time zone NOT NULL,
    next_at timestamp with time zone NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    last_error text,
    sent_at timestamp with time zone,
    lease_owner text,
    lease_until timestamp with time zone
);


--
-- Data for Name: callback_requests; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.callback_requests VALUES ('old-3', '103', 'PJSIP/103', '79005550000', 'PJSIP/{number}@trunk', '2026-12-01 09:00:00+00', '2026-12-01 10:00:00+00', '2026-12-01 09:00:00+00', 3, 60, 2, 'waiting', 0, NULL, NULL, NULL);


--
-- Data for Name: calls; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.calls VALUES ('old-1', '2026-12-01 09:00:00+00', '79001234567', '101', 'ch-1', 'PJSIP/client-1', '[]', '2026-12-01 09:00:41+00', 'voicemail', 'message left');
INSERT INTO public.calls VALUES ('old-2', '2026-12-01 09:01:00+00', '79007654321', '102', 'ch-2', 'PJSIP/client-2', '[]', '2026-12-01 09:02:10+00', 'answered', 'answered by 102');


--
-- Data for Name: journal_spools; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.journal_spools VALUES ('spool-a', 3, 1234, '2026-12-07 11:56:34.122686+00');


--
-- Data for Name: legs; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.legs VALUES ('old-1', 1, 'employee', '["101"]', NULL, '2026-12-01 09:00:00+00', '2026-12-01 09:00:20+00', 'no_answer', NULL, NULL, NULL);
INSERT INTO public.legs VALUES ('old-1', 2, 'voicemail', '["101"]', NULL, '2026-12-01 09:00:20+00', '2026-12-01 09:00:40+00', 'message_left', NULL, NULL, NULL);
INSERT INTO public.legs VALUES ('old-2', 1, 'employee', '["102"]', NULL, '2026-12-01 09:01:00+00', '2026-12-01 09:01:10+00', 'answered', '102', '2026-12-01 09:01:05+00', NULL);


--
-- Data for Name: notice_calls; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.notice_calls VALUES ('old-1', '2026-12-01 09:00:00+00', 1);


--
-- Data for Name: notice_settings; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: notices; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.notices VALUES ('old-1', 'voicemail', 'boss@example.com', 'en', '{"caller": "79001234567"}', 'pending', '2026-12-01 09:00:00+00', '2026-12-01 09:00:00+00', 0, NULL, NULL, NULL, NULL);


--
-- Name: callback_requests callback_requests_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.callback_requests
    ADD CONSTRAINT callback_requests_pkey PRIMARY KEY (id);


--
-- Name: calls calls_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.calls
    ADD CONSTRAINT calls_pkey PRIMARY KEY (call_id);


--
-- Name: journal_spools journal_spools_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.journal_spools
    ADD CONSTRAINT journal_spools_pkey PRIMARY KEY (spool);


--
-- Name: legs legs_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.legs
    ADD CONSTRAINT legs_pkey PRIMARY KEY (call_id, leg);


--
-- Name: notice_calls notice_calls_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.notice_calls
    ADD CONSTRAINT notice_calls_pkey PRIMARY KEY (call_id);


--
-- Name: notice_settings notice_settings_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.notice_settings
    ADD CONSTRAINT notice_settings_pkey PRIMARY KEY (name);


--
-- Name: notices notices_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.notices
    ADD CONSTRAINT notices_pkey PRIMARY KEY (call_id, kind, recipient);


--
-- Name: callback_requests_open; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX callback_requests_open ON public.callback_requests USING btree (requested_at) WHERE (state = ANY (ARRAY['waiting'::text, 'calling'::text]));


--
-- Name: calls_channel_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX calls_channel_id ON public.calls USING btree (channel_id);


--
-- Name: calls_open; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX calls_open ON public.calls USING btree (started_at) WHERE (ended_at IS NULL);


--
-- Name: calls_started_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX calls_started_at ON public.calls USING btree (started_at);


--
-- Name: notice_calls_seen; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX notice_calls_seen ON public.notice_calls USING btree (seen_at);


--
-- Name: notices_created; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX notices_created ON public.notices USING btree (created_at);


--
-- Name: notices_due; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX notices_due ON public.notices USING btree (next_at) WHERE (state = ANY (ARRAY['pending'::text, 'failed'::text]));


--
-- PostgreSQL database dump complete
--

\unrestrict zSFIkPWUeCBelZXLzHEggkxYIRxYGGlKwpVxgat81BBh5o9ltKLm6TiPD3MWkV9

