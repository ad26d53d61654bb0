/*
 * A foreign engine for the e2e tests: Apache Kafka's own Java client (the kafka-clients jar Maven resolved
 * for the local broker) publishing what the tests give it, the way a Java engine would. The Python side
 * builds and encodes the events; this side only chooses how they travel (codec, transaction, retries), so
 * the tests see exactly what a non-Python producer puts on the topics.
 *
 * Compiled and run by tests/fixtures/java.py. Modes (the first argument):
 *
 *   partition <count>...                      stdin: one base64 key a line; stdout: for each key, the
 *                                             partition Java's default partitioner picks for each count
 *   produce <bootstrap> <compression.type>    a plain producer (acks=all); a line "#compression <type>"
 *                                             sends the records after it through a producer of that type
 *   transactional <bootstrap> <transactional.id> <aborted>
 *                                             the first <aborted> records in a transaction that is aborted,
 *                                             the rest in one that is committed
 *   idempotent <bootstrap> <chunks>           enable.idempotence=true, acks=all, retries; the records go in
 *                                             <chunks> parts, and during each the connection to the leader
 *                                             is cut while requests are in flight: acknowledgements are
 *                                             lost, the batches are sent again
 *
 * Records on stdin, one a line: topic TAB base64(key) TAB base64(value) [TAB headers], headers being
 * base64(name):base64(value) pairs separated by commas. Output, one line per record in input order:
 * "sent <index> <partition> <offset>", then "metric <name> <value>" lines of the producer's own counters.
 */

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.lang.reflect.Field;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.Future;

import org.apache.kafka.clients.NetworkClient;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.clients.producer.internals.BuiltInPartitioner;
import org.apache.kafka.common.Metric;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.network.KafkaChannel;
import org.apache.kafka.common.network.Selector;
import org.apache.kafka.common.network.TransportLayer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class JavaEngine {
    private static final Base64.Decoder B64 = Base64.getDecoder();
    private static final String[] METRICS = {"record-send-total", "record-retry-total", "record-error-total", "batch-split-total"};

    private JavaEngine() {}

    public static void main(String[] args) throws Exception {
        if (args.length == 0) {
            throw new IllegalArgumentException("usage: JavaEngine partition|produce|transactional|idempotent ...");
        }
        switch (args[0]) {
            case "partition" -> partition(args);
            case "produce" -> produce(args[1], args[2]);
            case "transactional" -> transactional(args[1], args[2], Integer.parseInt(args[3]));
            case "idempotent" -> idempotent(args[1], Integer.parseInt(args[2]));
            default -> throw new IllegalArgumentException("unknown mode " + args[0]);
        }
    }

    /** The partition KafkaProducer picks for a keyed record when no partitioner.class is set. */
    private static void partition(String[] args) throws Exception {
        int[] counts = new int[args.length - 1];
        for (int i = 1; i < args.length; i++) {
            counts[i - 1] = Integer.parseInt(args[i]);
        }
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        StringBuilder out = new StringBuilder();
        for (String line = in.readLine(); line != null; line = in.readLine()) {
            byte[] key = B64.decode(line); // an empty line is the empty key
            for (int i = 0; i < counts.length; i++) {
                out.append(i == 0 ? "" : " ").append(BuiltInPartitioner.partitionForKey(key, counts[i]));
            }
            out.append('\n');
        }
        System.out.print(out);
        System.out.flush();
    }

    private static Properties base(String bootstrap) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        p.put(ProducerConfig.CLIENT_ID_CONFIG, "selene-java-engine");
        return p;
    }

    /**
     * Plain producers, one per compression type: the records after a line "#compression <type>" go through
     * the producer of that type (the first argument's before any such line), so one JVM serves every codec.
     */
    private static void produce(String bootstrap, String compression) throws Exception {
        Map<String, KafkaProducer<byte[], byte[]>> producers = new LinkedHashMap<>();
        List<Future<RecordMetadata>> sent = new ArrayList<>();
        String current = compression;
        try {
            for (String line : readLines()) {
                if (line.startsWith("#compression ")) {
                    current = line.substring("#compression ".length()).trim();
                    continue;
                }
                KafkaProducer<byte[], byte[]> producer = producers.get(current);
                if (producer == null) {
                    Properties p = base(bootstrap);
                    p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, current);
                    producer = new KafkaProducer<>(p);
                    producers.put(current, producer);
                }
                sent.add(producer.send(record(line)));
            }
            for (KafkaProducer<byte[], byte[]> producer : producers.values()) {
                producer.flush();
            }
            report(sent, producers.values());
        } finally {
            for (KafkaProducer<byte[], byte[]> producer : producers.values()) {
                producer.close();
            }
        }
    }

    private static void transactional(String bootstrap, String transactionalId, int aborted) throws Exception {
        Properties p = base(bootstrap);
        p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, transactionalId);
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        List<ProducerRecord<byte[], byte[]>> records = readRecords();
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            producer.initTransactions();
            List<Future<RecordMetadata>> sent = new ArrayList<>();
            producer.beginTransaction();
            for (ProducerRecord<byte[], byte[]> r : records.subList(0, aborted)) {
                sent.add(producer.send(r));
            }
            producer.flush(); // on the log, then rolled back: readers must never deliver them
            producer.abortTransaction();
            producer.beginTransaction();
            for (ProducerRecord<byte[], byte[]> r : records.subList(aborted, records.size())) {
                sent.add(producer.send(r));
            }
            producer.commitTransaction();
            report(sent, producer);
        }
    }

    /**
     * An idempotent producer whose acknowledgements get lost: the records go out in a few chunks and, while
     * a chunk's produce requests are in flight, the client's connection to the leader is cut under it (its
     * socket's input shut down, as a network fault would). The broker has usually written those batches
     * already; the client fails the requests as disconnected (retriable) and sends them again with the same
     * producer id and sequence numbers, which the broker must recognise as duplicates.
     */
    private static void idempotent(String bootstrap, int chunks) throws Exception {
        Properties p = base(bootstrap);
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        p.put(ProducerConfig.RETRIES_CONFIG, Integer.toString(Integer.MAX_VALUE));
        p.put(ProducerConfig.MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION, "5");
        p.put(ProducerConfig.RETRY_BACKOFF_MS_CONFIG, "20");
        p.put(ProducerConfig.RETRY_BACKOFF_MAX_MS_CONFIG, "200");
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "5000");
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "120000");
        p.put(ProducerConfig.BATCH_SIZE_CONFIG, "2048"); // many batches, several in flight per partition
        List<ProducerRecord<byte[], byte[]>> records = readRecords();
        Set<String> topics = new LinkedHashSet<>();
        for (ProducerRecord<byte[], byte[]> r : records) {
            topics.add(r.topic());
        }
        int breaks = 0;
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            Set<String> leaders = new LinkedHashSet<>();
            for (String topic : topics) {
                for (PartitionInfo info : producer.partitionsFor(topic)) {
                    leaders.add(info.leader().idString());
                }
            }
            NetworkClient client = (NetworkClient) field(field(producer, "sender"), "client");
            Selector selector = (Selector) field(client, "selector");
            List<Future<RecordMetadata>> sent = new ArrayList<>();
            int size = (records.size() + chunks - 1) / chunks;
            for (int from = 0; from < records.size(); from += size) {
                List<Future<RecordMetadata>> chunk = new ArrayList<>();
                for (ProducerRecord<byte[], byte[]> r : records.subList(from, Math.min(records.size(), from + size))) {
                    chunk.add(producer.send(r));
                }
                sent.addAll(chunk);
                breaks += cutWhileInFlight(client, selector, leaders, chunk);
            }
            producer.flush();
            report(sent, producer);
        }
        System.out.println("metric link-breaks " + breaks);
    }

    /**
     * While the chunk is unacknowledged, wait until a request to a leader is in flight and shut its
     * connection's input, up to three times: the number of cuts made. One cut can land just after the answer
     * was read (nothing is then retried), so a chunk gets more than one chance to lose an acknowledgement.
     */
    private static int cutWhileInFlight(
            NetworkClient client, Selector selector, Set<String> leaders, List<Future<RecordMetadata>> chunk)
            throws ReflectiveOperationException, InterruptedException {
        int cuts = 0;
        while (cuts < 3 && !chunk.stream().allMatch(Future::isDone)) {
            int cut = cutOnce(client, selector, leaders, chunk);
            if (cut == 0) {
                break;
            }
            cuts += cut;
            Thread.sleep(30); // let the I/O thread see the cut and reconnect
        }
        return cuts;
    }

    /** Wait until a request to a leader is in flight, then shut its connection's input: 1 if it did. */
    private static int cutOnce(
            NetworkClient client, Selector selector, Set<String> leaders, List<Future<RecordMetadata>> chunk)
            throws ReflectiveOperationException {
        long deadline = System.nanoTime() + 5_000_000_000L;
        while (System.nanoTime() < deadline && !chunk.stream().allMatch(Future::isDone)) {
            for (String node : leaders) {
                try {
                    // Read from this thread while the I/O thread owns them: a stale answer costs one more turn.
                    KafkaChannel channel = client.inFlightRequestCount(node) > 0 ? selector.channel(node) : null;
                    if (channel != null) {
                        SocketChannel socket = ((TransportLayer) field(channel, "transportLayer")).socketChannel();
                        socket.shutdownInput();
                        return 1;
                    }
                } catch (RuntimeException | IOException raced) {
                    // the I/O thread changed its maps under us, or the socket closed already: look again
                }
            }
            Thread.onSpinWait();
        }
        return 0;
    }

    private static Object field(Object owner, String name) throws ReflectiveOperationException {
        for (Class<?> c = owner.getClass(); c != null; c = c.getSuperclass()) {
            try {
                Field f = c.getDeclaredField(name);
                f.setAccessible(true);
                return f.get(owner);
            } catch (NoSuchFieldException e) {
                // declared higher up
            }
        }
        throw new NoSuchFieldException(owner.getClass().getName() + "." + name);
    }

    private static List<String> readLines() throws IOException {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        List<String> out = new ArrayList<>();
        for (String line = in.readLine(); line != null; line = in.readLine()) {
            if (!line.isEmpty()) {
                out.add(line);
            }
        }
        return out;
    }

    private static List<ProducerRecord<byte[], byte[]>> readRecords() throws IOException {
        List<ProducerRecord<byte[], byte[]>> out = new ArrayList<>();
        for (String line : readLines()) {
            out.add(record(line));
        }
        return out;
    }

    private static ProducerRecord<byte[], byte[]> record(String line) {
        String[] f = line.split("\t", -1);
        ProducerRecord<byte[], byte[]> r = new ProducerRecord<>(f[0], B64.decode(f[1]), B64.decode(f[2]));
        if (f.length > 3 && !f[3].isEmpty()) {
            for (String h : f[3].split(",")) {
                String[] nv = h.split(":", -1);
                String name = new String(B64.decode(nv[0]), StandardCharsets.UTF_8);
                r.headers().add(new RecordHeader(name, B64.decode(nv[1])));
            }
        }
        return r;
    }

    private static void report(List<Future<RecordMetadata>> sent, KafkaProducer<byte[], byte[]> producer)
            throws Exception {
        report(sent, List.of(producer));
    }

    /** One line per record in input order, then the producers' counters (summed over the producers). */
    private static void report(List<Future<RecordMetadata>> sent, Collection<KafkaProducer<byte[], byte[]>> producers)
            throws Exception {
        StringBuilder out = new StringBuilder();
        for (int i = 0; i < sent.size(); i++) {
            RecordMetadata md = sent.get(i).get();
            out.append("sent ").append(i).append(' ').append(md.partition()).append(' ').append(md.offset())
                .append('\n');
        }
        Map<String, Double> totals = new LinkedHashMap<>();
        for (KafkaProducer<byte[], byte[]> producer : producers) {
            for (Map.Entry<MetricName, ? extends Metric> e : producer.metrics().entrySet()) {
                MetricName name = e.getKey();
                if (name.group().equals("producer-metrics") && List.of(METRICS).contains(name.name())) {
                    double value = ((Number) e.getValue().metricValue()).doubleValue();
                    totals.merge(name.name(), value, Double::sum);
                }
            }
        }
        totals.forEach((name, value) -> out.append("metric ").append(name).append(' ').append(value).append('\n'));
        System.out.print(out);
        System.out.flush();
    }
}
